// Iterable request bodies of the event-sync kinds, built from one source row's values
// (reference/iterable-api.md sections 4 and 10; contract: sql-api.md "Event syncs"), with the
// checks that refuse a row before it is sent: identifiers per project type, required fields,
// createdAt, ids, items, platform. Pure C++: the engine extracts the values as text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ia {

enum class EventKind { Track, Purchase, Cart, DeviceToken, BrowserToken, EmailChange };

// 'track' | 'purchase' | 'cart' | 'device_token' | 'browser_token' | 'email_change' (the contract's
// `kind` values) and back; std::nullopt for anything else.
std::optional<EventKind> parse_event_kind(std::string_view name);
std::string_view event_kind_name(EventKind kind);
// sync_logs.action: 'track' | 'track_purchase' | 'update_cart' | 'register_device_token' |
// 'register_browser_token' | 'update_email'.
std::string_view event_kind_action(EventKind kind);
// Whether the kind's records carry an id (track, purchase): Iterable replaces an event or purchase
// whose id it already has, so a resend cannot double it.
bool event_kind_has_id(EventKind kind);
// The Iterable request field names valid in `fields` for the kind, in the contract's order, and
// those that create_event_sync requires (eventName for track also accepts the event_name
// parameter; an identifier is required too, but which depends on the project type).
const std::vector<std::string_view>& event_kind_fields(EventKind kind);
const std::vector<std::string_view>& event_kind_required_fields(EventKind kind);

// One source row, as PostgreSQL's text output gives the mapped columns (std::nullopt: the column
// is NULL or the field is not mapped). Field names are Iterable's own request field names.
struct EventValues {
    std::optional<std::string> event_name, email, user_id, id, created_at, data_fields, campaign_id,
        template_id;                                      // track (and purchase: all but event_name)
    std::optional<std::string> items, total;              // purchase, cart
    std::optional<std::string> token, platform, application_name;  // device_token
    std::optional<std::string> browser_token;             // browser_token
    std::optional<std::string> current_email, current_user_id, new_email;  // email_change
    // The sync's data_fields mapping: Iterable field name -> the column's value as JSON text
    // (to_jsonb(column)::text; std::nullopt for SQL NULL, sent as JSON null). Merged into
    // dataFields, where it wins over a key of the same name from the "dataFields" column.
    std::vector<std::pair<std::string, std::optional<std::string>>> extra_data_fields;
};

struct EventBuildOptions {
    EventKind kind = EventKind::Track;
    std::string project_type = "hybrid";   // 'email' | 'user_id' | 'hybrid'
    int64_t sync_id = 0;
    std::optional<std::string> event_name;  // the event_name parameter: eventName when no column gives one
};

struct BuiltEvent {
    std::string error_code;     // empty: the record can be sent. Else 'invalid_email',
                                // 'invalid_user_id', 'missing_identifier' or 'invalid_field'
    std::string error_message;  // why, naming the field and the fix
    std::string path;           // e.g. "/api/events/trackBulk", "/api/users/update"
    std::string json;           // track: one element of trackBulk's "events"; other kinds: the body
    std::string email, user_id; // the identifiers sent (normalized email), to match the answer
    std::string event_name;     // track: the eventName sent
    std::string record_key;     // sync_logs.record_key: the event/purchase id, else the cursor value
    std::string note;           // what of the row was not sent (an invalid identifier next to a valid one)
    bool ok() const { return error_code.empty(); }
};

// Builds the request of one row. cursor_value: the row's cursor as canonical text (std::nullopt:
// SQL NULL, the row fails 'invalid_field'); row_discriminator: see derive_event_id.
//
// Identifiers (the "Identifier validation" table, per project type, as the list syncs):
//   email project: a valid email is required; only the email is sent (a userId next to it would
//     overwrite the profile's userId: "email wins").
//   user_id project: a valid userId is required; only the userId is sent (events do not change
//     profiles, and an email is not unique there).
//   hybrid: a valid email or userId; every valid one is sent (Iterable prioritizes the email).
// An invalid identifier next to a valid one is left out and named in `note`.
// email_change: email project -> POST /api/users/updateEmail {currentEmail|currentUserId,
// newEmail} (currentEmail preferred); hybrid and user_id projects -> POST /api/users/update
// {"userId"|"email": current, "dataFields":{"email": new}} (reference 10.12; a user_id project
// needs currentUserId).
BuiltEvent build_event(const EventBuildOptions& options, const EventValues& values,
                       const std::optional<std::string>& cursor_value, std::string_view row_discriminator = {});

// ---- the pieces, for the engine's checks and the tests ----------------------------------------

// createdAt as Iterable expects it: unix epoch **seconds** (reference 10.4: Iterable's own SDKs
// and Segment send seconds; milliseconds are RudderStack's, undocumented). Accepts:
//   * epoch seconds: an integer or decimal text ("1700000000", "-5", "1700000000.75": the fraction is
//     dropped toward minus infinity); |value| >= 10^11 is refused as probably milliseconds;
//   * a timestamp with a UTC offset: PostgreSQL's timestamptz output in DateStyle ISO
//     ("2024-01-02 03:04:05.123456+00", "...+05:30", "...-03:30:15") or ISO 8601
//     ("2024-01-02T03:04:05Z", "...+0530"); fractions of a second are dropped.
// Refused (std::nullopt, reason in *error): no offset (a timestamp without time zone is ambiguous),
// "infinity", BC dates, out-of-range fields, exponents, anything else.
std::optional<int64_t> created_at_seconds(std::string_view text, std::string* error = nullptr);

// The id of a record whose id column is not mapped: "ia-<sync_id>-<32 hex digits>", the first 128
// bits of SHA-256 over a length-prefixed encoding of (sync_id, cursor_value, row_discriminator).
// Deterministic (a resend carries the same id: Iterable replaces), only letters, digits and
// hyphens, at most 57 bytes, distinct across syncs. A cursor value identifies a row only when the
// cursor is unique; otherwise the engine passes a discriminator that tells rows with the same
// cursor apart (see docs/event-syncs.md).
std::string derive_event_id(int64_t sync_id, std::string_view cursor_value, std::string_view row_discriminator = {});

constexpr std::size_t kMaxEventIdBytes = 512;
// Empty when `id` is a valid Iterable event or purchase id (1 to 512 bytes, ASCII letters, digits
// and hyphens only), else the reason.
std::string event_id_problem(std::string_view id);

// `items` (jsonb text) checked and normalized: a JSON array (an empty one is allowed:
// an empty cart) of objects with id (string), name (string), price (number), quantity (integer; 2.0
// is written 2), and optionally sku, description, url, imageUrl (strings), categories (array of
// strings), dataFields (object). Any other key, a missing required key or a wrong type refuses
// the items (std::nullopt, reason naming the item and key in *error).
std::optional<std::string> normalize_items(std::string_view items_json, std::string* error = nullptr);

// APNS, APNS_SANDBOX or GCM, exactly (reference 10.11: FCM tokens use GCM).
bool is_valid_platform(std::string_view platform);

}  // namespace ia

#include "core/cpp_only.hpp"
