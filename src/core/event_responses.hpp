// Iterable's answers to the event-sync requests, mapped to per-record outcomes
// (reference/iterable-api.md sections 10.7, 10.8, 10.11, 10.12; contract: sql-api.md "Event syncs").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/event_bodies.hpp"
#include "core/iterable_json.hpp"  // ResponseFormatError

namespace ia {

// What one trackBulk element carried, to match the answer's arrays (BuiltEvent's fields).
struct SentEvent {
    std::string email;       // normalized; empty = not sent
    std::string user_id;     // empty = not sent
    std::string event_name;
};

struct EventOutcome {
    bool succeeded = true;
    std::string error_code;     // empty on success, else one of the contract's codes (below)
    std::string error_message;  // Iterable's reason, e.g. "Iterable refused the event: disallowedEventNames"
};

struct TrackBulkResult {
    int64_t success_count = 0, fail_count = 0;  // as Iterable reported them
    std::vector<EventOutcome> rows;             // one per event sent, same order
    // failCount minus the rows matched to a failure array. > 0: Iterable reported failures it did
    // not say of which event; since events carry ids, the engine can resend the rows it holds as
    // succeeded (a resend replaces, never doubles) one by one to learn which failed.
    int64_t unattributed_failures = 0;
};

// Parses a trackBulk 200 body (BulkTrackResponse) in either shape: SPEC's failedUpdates with six
// arrays, or the 2022 recording with only the deprecated top-level invalidEmails/invalidUserIds
// (both are read when both are present), plus disallowedEventNames. Per event, the first match of:
//   forgotten        failedUpdates.forgottenEmails / forgottenUserIds
//   invalid_email    failedUpdates.invalidEmails, invalidEmails
//   invalid_user_id  failedUpdates.invalidUserIds, invalidUserIds
//   not_found        failedUpdates.notFoundEmails / notFoundUserIds
//   disallowed_event_name  disallowedEventNames (by eventName, exactly)
// Emails compare case-insensitively, userIds exactly. Every event carrying a listed value fails
// (events of one user share its fate: Iterable reports identifiers, not positions).
// Throws ResponseFormatError when the body is not a JSON object with non-negative integer
// successCount and failCount.
TrackBulkResult parse_track_bulk_response(std::string_view body, const std::vector<SentEvent>& sent);

// A field whose type Iterable refused (400 RequestFieldsTypesMismatched,
// params.validationErrors.<field>: {incomingTypes, expectedType, category, offendingValue, _type}).
struct FieldMismatch {
    std::string field;
    std::string expected_type;   // "" when absent
    std::string category;        // "event", "user", "purchase", ... ("" when absent)
    std::string offending_value; // the value as JSON text ("" when absent)
};
// The mismatches of such a body (empty when it has none, or is not JSON).
std::vector<FieldMismatch> parse_fields_mismatch(std::string_view body);

// Which of the records sent (their dataFields JSON texts, "" = none) carry a refused field: the
// field is looked up as a top-level key, else as a dotted path (parent.child); a record is a
// suspect when it has the field with the offending value, or, when Iterable gave no value, with a
// value of another JSON type than expected. Indexes in ascending order.
std::vector<std::size_t> mismatch_suspects(const std::vector<FieldMismatch>& mismatches,
                                           const std::vector<std::string>& data_fields_json);

// What to do after a trackBulk request that did not answer 200.
enum class BulkRefusal {
    Retry,        // 429, 5xx, no answer: send the same batch again later (ids make it safe)
    Fatal,        // 401/403 (bad key), 404 (no such route), other statuses: the run fails
    SplitTypes,   // 400 RequestFieldsTypesMismatched: `mismatches` says which field; fail the
                  // suspects (mismatch_suspects) 'invalid_data', resend the others
    BadRecords,   // 400 BadJsonBody naming obj.events[i]: `records` fail 'invalid_field', resend the others
    TooLarge,     // 413 (BatchTooLarge): split the batch; a single event fails 'too_large'
    SendSingly,   // another 400: resend each event alone to learn which one Iterable refuses
};
struct BulkFailure {
    BulkRefusal action = BulkRefusal::Fatal;
    std::vector<std::size_t> records;      // BadRecords: indexes into the batch, ascending, unique
    std::vector<FieldMismatch> mismatches; // SplitTypes
    std::string message;                   // describe_http_failure(): one line, API key redacted
};
// status 0 = no answer (connection failure, timeout).
BulkFailure classify_track_bulk_failure(long status, std::string_view body, std::size_t events_sent);

// The answer of a single-record endpoint (trackPurchase, updateCart, registerDeviceToken,
// registerBrowserToken, updateEmail, users/update, track).
enum class Disposition {
    Succeeded,
    Failed,  // the record fails with error_code (retried by later runs unless is_permanent_error)
    Retry,   // 429, 5xx, no answer: send again (after pacing)
    Fatal,   // 401/403/404: the run fails, nothing of this record is logged as failed
};
struct SingleOutcome {
    Disposition disposition = Disposition::Succeeded;
    std::string error_code;
    std::string error_message;  // describe_http_failure() of the answer: redacted, one line
};
// Codes (Iterable's envelope `code`, then the status):
//   200 -> Succeeded, except a track answer whose msg says "disallowed from tracking" ->
//          disallowed_event_name (Iterable's 200 for a refused event name, reference 10.8)
//   InvalidEmailAddressError -> invalid_email; InvalidUserIdError -> invalid_user_id;
//   UnknownEmailError / UnknownUserIdError, or BadParams "... does not exist" -> not_found;
//   ForgottenUserError -> forgotten; EmailAlreadyExists / UserIdAlreadyExists / any other 409 ->
//   conflict; RequestFieldsTypesMismatched -> invalid_data; BadJsonBody -> invalid_field;
//   413 or BatchTooLarge -> too_large; another 4xx -> http_error.
SingleOutcome classify_single_response(EventKind kind, long status, std::string_view body);

// Whether a failed record is refused for good (invalid input: retry_failed_records does not send
// it again): invalid_email, invalid_user_id, missing_identifier, invalid_field, invalid_data,
// too_large, forgotten. Others (not_found, conflict, disallowed_event_name, http_error,
// rate_limited) may succeed later.
bool is_permanent_error(std::string_view error_code);

}  // namespace ia

#include "core/cpp_only.hpp"
