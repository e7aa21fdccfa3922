// Iterable request bodies and response parsing for the lists endpoints
// (reference/iterable-api.md sections 2.1, 2.2, 2.6-2.8 and 6).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ia {

// A 200 (or other) response whose body does not have the shape Iterable documents. Never to be
// taken as success.
struct ResponseFormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Subscriber {                // one row of a batch
    std::string email;             // normalized, empty = absent
    std::string user_id;           // empty = absent
    std::string data_fields_json;  // a JSON object text as PostgreSQL's jsonb output gives it, or
                                   // empty = absent; embedded verbatim (it is already valid JSON).
                                   // The text "null" is treated as absent too.
};

// Appends a JSON string literal (with the quotes) for `s`.
// Escaping: '"' and '\\' are backslash-escaped; \b \f \n \r \t use their short forms; other
// control characters (< 0x20) are written as \u00XX. DEL and non-ASCII characters are copied as
// UTF-8. Invalid UTF-8 policy: each maximal invalid subsequence (stray continuation byte, truncated
// sequence, overlong form, UTF-16 surrogate, code point > U+10FFFF) is replaced by one U+FFFD, so
// the output is always valid UTF-8 and valid JSON.
void append_json_string(std::string& out, std::string_view s);

// {"listId":N,"subscribers":[{"email":..,"userId":..,"dataFields":{..}},...],"updateExistingUsersOnly":true|false}
// Absent members of a subscriber are omitted. updateExistingUsersOnly is always written.
void append_subscribe_body(std::string& out, int64_t list_id, const std::vector<Subscriber>& subscribers,
                           bool update_existing_users_only);

// {"listId":N,"subscribers":[{"email":..,"userId":..}],"campaignId":N (only when set),"channelUnsubscribe":false|true}
// channelUnsubscribe is always written (Iterable's default is disputed, reference 2.7).
void append_unsubscribe_body(std::string& out, int64_t list_id, const std::vector<Subscriber>& subscribers,
                             std::optional<int64_t> campaign_id, bool channel_unsubscribe);

// POST /api/users/bulkUpdate: {"users":[{"email":..,"userId":..,"dataFields":{..},
// "preferUserId":true,"mergeNestedObjects":true},...]}; the two flags are written on every user
// when set, omitted when false (Iterable's default). dataFields keep their JSON types (embedded
// verbatim). Its answer has the subscribe answer's shape: parse it with BulkAction::Subscribe.
void append_bulk_update_body(std::string& out, const std::vector<Subscriber>& users, bool prefer_user_id,
                             bool merge_nested_objects);

enum class BulkAction { Subscribe, Unsubscribe };

struct RowOutcome {
    bool succeeded = true;
    std::string error_code;     // empty on success; else one of: invalid_email, invalid_user_id,
                                // not_found, forgotten, conflict, invalid_data
    std::string error_message;  // human text naming Iterable's own array, e.g.
                                // "Iterable rejected the email: failedUpdates.invalidEmails"
};

struct BulkResponse {
    int64_t success_count = 0, fail_count = 0;  // as Iterable reported them
    std::vector<RowOutcome> rows;               // one per subscriber sent, same order
    int64_t unattributed_failures = 0;  // failCount minus the rows matched to a failure array
                                        // (> 0: Iterable reported failures we could not match)
};

// Parses a subscribe/unsubscribe 200 body and maps every failedUpdates array (plus the deprecated
// top-level invalidEmails/invalidUserIds) back to the rows sent: a row's email is compared
// case-insensitively with the *Emails arrays, its userId exactly with the *UserIds arrays.
// A row found in several arrays takes the first code of: forgotten, invalid_email/invalid_user_id,
// conflict, invalid_data, not_found.
// Unsubscribe: a row found only in notFoundEmails/notFoundUserIds is already off the list and
// counts as succeeded (empty code and message); it still counts as attributed.
// Rows keyed by userId may share an email. A per-user failure (conflict, invalid_data, not_found)
// listed under a shared email goes only to the sharers whose userId the *UserIds arrays list too,
// when they list any; when they list none, every sharer fails (and is retried). Invalid and forgotten
// emails fail every row that carries them. (test/fuzz/fuzz_bulk_response.cpp's reference_rows()
// implements the same rule; change both together.)
// O(rows + failures). Throws ResponseFormatError when the body is not JSON, not an object, or lacks
// non-negative integer successCount/failCount.
BulkResponse parse_bulk_response(std::string_view body, const std::vector<Subscriber>& sent, BulkAction action);

struct ListInfo {
    int64_t id = 0;
    std::string name;
    std::string list_type;       // "" when Iterable omitted it
    int64_t created_at_ms = 0;   // 0 when Iterable omitted it
    std::optional<std::string> description;
};

// {"lists":[{"id":..,"name":..,"listType":..,"createdAt":..,"description"?:..}]}. id and name are
// required; listType, createdAt and description may be missing (or null) but not of another type.
// Throws ResponseFormatError.
std::vector<ListInfo> parse_lists_response(std::string_view body);

// {"listId":N}; throws ResponseFormatError.
int64_t parse_create_list_response(std::string_view body);

// {"name":"..","description":".."} (description only when given).
std::string build_create_list_body(std::string_view name, std::optional<std::string_view> description);

struct ApiError {
    std::string code;  // "" when the body had a msg but no code
    std::string msg;   // "" when the body had a code but no msg
};
// Iterable's envelope {"msg","code","params"}: a JSON object with a string "code" and/or a string
// "msg". std::nullopt when the body is not that shape (plain-text 429, HTML 404, empty body).
std::optional<ApiError> parse_error_envelope(std::string_view body);

// One line of human text for an HTTP failure, for error columns, e.g.
//   "HTTP 401 BadApiKey: Invalid API key"
//   "HTTP 429: Rate limit exceeded. Please try again later."
// The envelope's code is left out when it is "Success" (Iterable sends it on some errors). Other
// bodies are shown as text: HTML tags dropped, control characters and runs of whitespace folded to
// one space. The text shown is truncated to about 200 bytes ("..." appended), always valid UTF-8,
// and values following "api-key"/"api_key"/"apikey" are replaced by "[redacted]" (redact_secret()
// with no key: the key itself is redacted by value from the body before, by the HTTP client).
std::string describe_http_failure(long status, std::string_view body);

}  // namespace ia

#include "core/cpp_only.hpp"
