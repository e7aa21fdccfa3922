#include "core/event_bodies.hpp"

#include <charconv>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/identifiers.hpp"
#include "core/iterable_json.hpp"
#include "core/sha256.hpp"

namespace ia {
namespace {

using json = nlohmann::json;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// 'text' with single quotes doubled, in single quotes (as the list syncs quote values in messages).
std::string sql_quoted(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
    }
    out += '\'';
    return out;
}

bool parse_int64(std::string_view text, int64_t& out) {
    text = trim(text);
    if (text.empty()) return false;
    if (text.front() == '+') text.remove_prefix(1);
    const auto res = std::from_chars(text.data(), text.data() + text.size(), out);
    return res.ec == std::errc() && res.ptr == text.data() + text.size();
}

// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
    std::size_t i = 0;
    const std::size_t n = s.size();
    if (i < n && s[i] == '-') ++i;
    if (i >= n) return false;
    if (s[i] == '0') {
        ++i;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i])) ++i;
    } else {
        return false;
    }
    if (i < n && s[i] == '.') {
        ++i;
        const std::size_t start = i;
        while (i < n && is_digit(s[i])) ++i;
        if (i == start) return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
        const std::size_t start = i;
        while (i < n && is_digit(s[i])) ++i;
        if (i == start) return false;
    }
    return i == n;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int64_t y, unsigned m) {
    static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `width` digits at s[i].
bool digits(std::string_view s, std::size_t& i, std::size_t width, unsigned& out) {
    if (i + width > s.size()) return false;
    out = 0;
    for (std::size_t k = 0; k < width; ++k) {
        if (!is_digit(s[i + k])) return false;
        out = out * 10 + static_cast<unsigned>(s[i + k] - '0');
    }
    i += width;
    return true;
}

bool set_error(std::string* error, std::string message) {
    if (error) *error = std::move(message);
    return false;
}

std::optional<int64_t> epoch_seconds_text(std::string_view s, std::string* error) {
    // [-]digits[.digits]
    std::size_t i = 0;
    const bool negative = s[0] == '-';
    if (negative || s[0] == '+') ++i;
    const std::size_t int_start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    const std::string_view int_part = s.substr(int_start, i - int_start);
    bool fraction_nonzero = false;
    if (i < s.size() && s[i] == '.') {
        ++i;
        const std::size_t frac_start = i;
        while (i < s.size() && is_digit(s[i])) {
            if (s[i] != '0') fraction_nonzero = true;
            ++i;
        }
        if (i == frac_start && int_part.empty()) i = 0;  // "." alone
    }
    if (int_part.empty() || i != s.size()) {
        set_error(error, "createdAt " + sql_quoted(s) + " is neither epoch seconds nor a timestamp with a UTC offset");
        return std::nullopt;
    }
    int64_t v = 0;
    const auto res = std::from_chars(int_part.data(), int_part.data() + int_part.size(), v);
    if (res.ec != std::errc() || v >= 100000000000LL) {
        set_error(error, "createdAt " + sql_quoted(s) +
                             " is too large for epoch seconds (milliseconds?): Iterable expects unix seconds");
        return std::nullopt;
    }
    if (negative) v = -v - (fraction_nonzero ? 1 : 0);
    return v;
}

std::optional<int64_t> timestamp_text(std::string_view s, std::string* error) {
    auto bad = [&](const char* why) -> std::optional<int64_t> {
        set_error(error, "createdAt " + sql_quoted(s) + " is not a timestamp Iterable can take: " + why);
        return std::nullopt;
    };
    std::size_t i = 0;
    unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!digits(s, i, 4, year)) return bad("expected YYYY-MM-DD HH:MM:SS and a UTC offset");
    while (i < s.size() && is_digit(s[i])) {  // years past 9999
        if (year > 100000) return bad("year out of range");
        year = year * 10 + static_cast<unsigned>(s[i++] - '0');
    }
    if (i >= s.size() || s[i++] != '-' || !digits(s, i, 2, month) || i >= s.size() || s[i++] != '-' ||
        !digits(s, i, 2, day))
        return bad("expected YYYY-MM-DD HH:MM:SS and a UTC offset");
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return bad("no such date");
    if (i >= s.size() || (s[i] != ' ' && s[i] != 'T')) return bad("no time of day and UTC offset");
    ++i;
    if (!digits(s, i, 2, hour) || i >= s.size() || s[i++] != ':' || !digits(s, i, 2, minute))
        return bad("expected HH:MM:SS after the date");
    if (i < s.size() && s[i] == ':') {
        ++i;
        if (!digits(s, i, 2, second)) return bad("expected HH:MM:SS after the date");
        if (i < s.size() && s[i] == '.') {
            ++i;
            const std::size_t start = i;
            while (i < s.size() && is_digit(s[i])) ++i;
            if (i == start) return bad("empty fraction of a second");
        }
    }
    if (hour > 23 || minute > 59 || second > 59) return bad("time of day out of range");
    // The offset: Z, or +HH, +HH:MM, +HH:MM:SS, +HHMM.
    int64_t offset = 0;
    if (i >= s.size()) return bad("no UTC offset (use a timestamptz column or epoch seconds)");
    if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
    } else if (s[i] == '+' || s[i] == '-') {
        const int sign = s[i] == '-' ? -1 : 1;
        ++i;
        unsigned oh = 0, om = 0, os = 0;
        if (!digits(s, i, 2, oh)) return bad("malformed UTC offset");
        if (i < s.size() && s[i] == ':') {
            ++i;
            if (!digits(s, i, 2, om)) return bad("malformed UTC offset");
            if (i < s.size() && s[i] == ':') {
                ++i;
                if (!digits(s, i, 2, os)) return bad("malformed UTC offset");
            }
        } else if (i < s.size() && is_digit(s[i])) {
            if (!digits(s, i, 2, om)) return bad("malformed UTC offset");
        }
        if (oh > 15 || om > 59 || os > 59) return bad("UTC offset out of range");
        offset = sign * static_cast<int64_t>(oh * 3600 + om * 60 + os);
    } else {
        return bad("no UTC offset (use a timestamptz column or epoch seconds)");
    }
    if (i != s.size()) {
        if (s.substr(i) == " BC") return bad("BC dates are not supported");
        return bad("unexpected text after the UTC offset");
    }
    const int64_t days = days_from_civil(year, month, day);
    return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

// ---- identity ---------------------------------------------------------------------------------

struct Identity {
    std::string email, user_id;  // to send ("" = not sent)
    std::string error_code, error_message, note;
};

std::string invalid_email_message(std::string_view field, std::string_view raw) {
    return std::string(field) + " " + sql_quoted(raw) + " is not a valid address";
}
std::string invalid_user_id_message(std::string_view field, std::string_view raw) {
    return std::string(field) + " " + sql_quoted(raw) +
           " is not valid: it must be 1 to 52 printable ASCII characters without leading or trailing whitespace";
}

bool given_email(const std::optional<std::string>& raw) { return raw && !trim(*raw).empty(); }
bool given_user_id(const std::optional<std::string>& raw) { return raw && !raw->empty(); }

Identity resolve_identity(std::string_view project_type, const std::optional<std::string>& raw_email,
                          const std::optional<std::string>& raw_user_id, std::string_view email_field = "email",
                          std::string_view user_id_field = "userId") {
    Identity id;
    std::optional<std::string> email;
    if (given_email(raw_email)) email = normalize_email(*raw_email);
    const bool user_id_valid = given_user_id(raw_user_id) && is_valid_user_id(*raw_user_id);
    auto refuse_email = [&] {
        id.error_code = "invalid_email";
        id.error_message = invalid_email_message(email_field, *raw_email);
    };
    auto refuse_user_id = [&] {
        id.error_code = "invalid_user_id";
        id.error_message = invalid_user_id_message(user_id_field, *raw_user_id);
    };
    if (project_type == "email") {
        if (email) {
            id.email = *email;
        } else if (given_email(raw_email)) {
            refuse_email();
        } else {
            id.error_code = "missing_identifier";
            id.error_message = std::string(email_field) + " is NULL or empty: an email-based project identifies users by email";
        }
        return id;
    }
    if (project_type == "user_id") {
        if (user_id_valid) {
            id.user_id = *raw_user_id;
        } else if (given_user_id(raw_user_id)) {
            refuse_user_id();
        } else {
            id.error_code = "missing_identifier";
            id.error_message = std::string(user_id_field) + " is NULL or empty: a userID-based project identifies users by userId";
        }
        return id;
    }
    // hybrid
    if (email) id.email = *email;
    if (user_id_valid) id.user_id = *raw_user_id;
    if (!id.email.empty() || !id.user_id.empty()) {
        if (id.email.empty() && given_email(raw_email))
            id.note = invalid_email_message(email_field, *raw_email) + " and was not sent";
        if (id.user_id.empty() && given_user_id(raw_user_id))
            id.note = invalid_user_id_message(user_id_field, *raw_user_id) + " and was not sent";
        return id;
    }
    if (given_user_id(raw_user_id)) {
        refuse_user_id();
    } else if (given_email(raw_email)) {
        refuse_email();
    } else {
        id.error_code = "missing_identifier";
        id.error_message = std::string("both ") + std::string(email_field) + " and " + std::string(user_id_field) +
                           " are NULL or empty";
    }
    return id;
}

// ---- body pieces ------------------------------------------------------------------------------

void refuse(BuiltEvent& out, std::string code, std::string message) {
    out.error_code = std::move(code);
    out.error_message = std::move(message);
    out.json.clear();
}

void append_int(std::string& out, int64_t v) {
    char buf[24];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(res.ptr - buf));
}

// ,"key":"value"  (or without the comma for the first member)
void member_string(std::string& out, bool& first, std::string_view key, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out.append(key.data(), key.size());
    out += "\":";
    append_json_string(out, value);
}
void member_raw(std::string& out, bool& first, std::string_view key, std::string_view raw_json) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out.append(key.data(), key.size());
    out += "\":";
    out.append(raw_json.data(), raw_json.size());
}
void member_int(std::string& out, bool& first, std::string_view key, int64_t v) {
    std::string text;
    append_int(text, v);
    member_raw(out, first, key, text);
}

void append_identity(std::string& out, bool& first, const Identity& id) {
    if (!id.email.empty()) member_string(out, first, "email", id.email);
    if (!id.user_id.empty()) member_string(out, first, "userId", id.user_id);
}

// dataFields: the jsonb column (an object) merged with the data_fields columns. Empty result text
// = nothing to send. false (and *refusal) when a value is not valid.
bool data_fields_json(const EventValues& v, std::string& out, std::string& problem) {
    out.clear();
    const bool has_base = v.data_fields && trim(*v.data_fields) != "null" && !trim(*v.data_fields).empty();
    json merged;
    if (has_base) {
        merged = json::parse(*v.data_fields, nullptr, /*allow_exceptions=*/false);
        if (merged.is_discarded() || !merged.is_object()) {
            problem = "dataFields must be a JSON object (a jsonb column holding an object)";
            return false;
        }
        if (v.extra_data_fields.empty()) {
            out = std::string(trim(*v.data_fields));  // verbatim: no loss of numeric precision
            return true;
        }
    } else if (v.extra_data_fields.empty()) {
        return true;
    } else {
        merged = json::object();
    }
    for (const auto& [name, value] : v.extra_data_fields) {
        if (!value) {
            merged[name] = nullptr;
            continue;
        }
        json parsed = json::parse(*value, nullptr, /*allow_exceptions=*/false);
        if (parsed.is_discarded()) {
            problem = "data_fields value of " + sql_quoted(name) + " is not JSON";
            return false;
        }
        merged[name] = std::move(parsed);
    }
    out = merged.dump(-1, ' ', false, json::error_handler_t::replace);
    return true;
}

bool optional_int(const std::optional<std::string>& text, std::string_view field, bool int32, int64_t& out,
                  bool& present, std::string& problem) {
    present = false;
    if (!text || trim(*text).empty()) return true;
    if (!parse_int64(*text, out) ||
        (int32 && (out < std::numeric_limits<int32_t>::min() || out > std::numeric_limits<int32_t>::max()))) {
        problem = std::string(field) + " " + sql_quoted(*text) + " is not an integer" + (int32 ? " (32-bit)" : "");
        return false;
    }
    present = true;
    return true;
}

bool non_empty(const std::optional<std::string>& v) { return v && !v->empty(); }

}  // namespace

// ---- kinds --------------------------------------------------------------------------------------

std::optional<EventKind> parse_event_kind(std::string_view name) {
    if (name == "track") return EventKind::Track;
    if (name == "purchase") return EventKind::Purchase;
    if (name == "cart") return EventKind::Cart;
    if (name == "device_token") return EventKind::DeviceToken;
    if (name == "browser_token") return EventKind::BrowserToken;
    if (name == "email_change") return EventKind::EmailChange;
    return std::nullopt;
}

std::string_view event_kind_name(EventKind kind) {
    switch (kind) {
        case EventKind::Track: return "track";
        case EventKind::Purchase: return "purchase";
        case EventKind::Cart: return "cart";
        case EventKind::DeviceToken: return "device_token";
        case EventKind::BrowserToken: return "browser_token";
        case EventKind::EmailChange: return "email_change";
    }
    return "track";
}

std::string_view event_kind_action(EventKind kind) {
    switch (kind) {
        case EventKind::Track: return "track";
        case EventKind::Purchase: return "track_purchase";
        case EventKind::Cart: return "update_cart";
        case EventKind::DeviceToken: return "register_device_token";
        case EventKind::BrowserToken: return "register_browser_token";
        case EventKind::EmailChange: return "update_email";
    }
    return "track";
}

bool event_kind_has_id(EventKind kind) { return kind == EventKind::Track || kind == EventKind::Purchase; }

const std::vector<std::string_view>& event_kind_fields(EventKind kind) {
    static const std::vector<std::string_view> kTrack = {"eventName", "email",    "userId",     "id",
                                                         "createdAt", "dataFields", "campaignId", "templateId"};
    static const std::vector<std::string_view> kPurchase = {"id",        "email",      "userId",     "items",
                                                            "total",     "createdAt",  "dataFields", "campaignId",
                                                            "templateId"};
    static const std::vector<std::string_view> kCart = {"email", "userId", "items"};
    static const std::vector<std::string_view> kDevice = {"email",    "userId",          "token",
                                                          "platform", "applicationName", "dataFields"};
    static const std::vector<std::string_view> kBrowser = {"email", "userId", "browserToken"};
    static const std::vector<std::string_view> kEmail = {"currentEmail", "currentUserId", "newEmail"};
    switch (kind) {
        case EventKind::Track: return kTrack;
        case EventKind::Purchase: return kPurchase;
        case EventKind::Cart: return kCart;
        case EventKind::DeviceToken: return kDevice;
        case EventKind::BrowserToken: return kBrowser;
        case EventKind::EmailChange: return kEmail;
    }
    return kTrack;
}

const std::vector<std::string_view>& event_kind_required_fields(EventKind kind) {
    static const std::vector<std::string_view> kTrack = {"eventName"};
    static const std::vector<std::string_view> kPurchase = {"items", "total"};
    static const std::vector<std::string_view> kCart = {"items"};
    static const std::vector<std::string_view> kDevice = {"token", "platform"};
    static const std::vector<std::string_view> kBrowser = {"browserToken"};
    static const std::vector<std::string_view> kEmail = {"newEmail"};
    switch (kind) {
        case EventKind::Track: return kTrack;
        case EventKind::Purchase: return kPurchase;
        case EventKind::Cart: return kCart;
        case EventKind::DeviceToken: return kDevice;
        case EventKind::BrowserToken: return kBrowser;
        case EventKind::EmailChange: return kEmail;
    }
    return kTrack;
}

// ---- pieces -----------------------------------------------------------------------------------

std::optional<int64_t> created_at_seconds(std::string_view text, std::string* error) {
    const std::string_view s = trim(text);
    if (s.empty()) {
        set_error(error, "createdAt is empty");
        return std::nullopt;
    }
    // Epoch seconds have no '-' or ':' after the first character; a timestamp starts with 4 digits and '-'.
    const bool looks_numeric = s.find_first_not_of("+-0123456789.", 0) == std::string_view::npos &&
                               s.find('-', 1) == std::string_view::npos;
    if (looks_numeric) return epoch_seconds_text(s, error);
    return timestamp_text(s, error);
}

std::string derive_event_id(int64_t sync_id, std::string_view cursor_value, std::string_view row_discriminator) {
    // Length-prefixed fields, so that no two (cursor, discriminator) pairs encode alike.
    std::string input = "iterable_audience/event-id/v1\n";
    append_int(input, sync_id);
    input += '\n';
    append_int(input, static_cast<int64_t>(cursor_value.size()));
    input += ':';
    input.append(cursor_value.data(), cursor_value.size());
    append_int(input, static_cast<int64_t>(row_discriminator.size()));
    input += ':';
    input.append(row_discriminator.data(), row_discriminator.size());
    std::string out = "ia-";
    append_int(out, sync_id);
    out += '-';
    out += sha256_hex(input).substr(0, 32);
    return out;
}

std::string event_id_problem(std::string_view id) {
    if (id.empty()) return "it is empty";
    if (id.size() > kMaxEventIdBytes) return "it is longer than 512 bytes";
    for (char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-';
        if (!ok) return "Iterable accepts only letters, digits and hyphens in an id";
    }
    return {};
}

bool is_valid_platform(std::string_view platform) {
    return platform == "APNS" || platform == "APNS_SANDBOX" || platform == "GCM";
}

std::optional<std::string> normalize_items(std::string_view items_json, std::string* error) {
    json items = json::parse(items_json.begin(), items_json.end(), nullptr, /*allow_exceptions=*/false);
    if (items.is_discarded() || !items.is_array()) {
        set_error(error, "items must be a JSON array of {id, name, price, quantity}");
        return std::nullopt;
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
        json& item = items[i];
        const std::string where = "items[" + std::to_string(i) + "]";
        if (!item.is_object()) {
            set_error(error, where + " is not an object {id, name, price, quantity}");
            return std::nullopt;
        }
        for (const char* key : {"id", "name", "price", "quantity"}) {
            auto it = item.find(key);
            if (it == item.end() || it->is_null()) {
                set_error(error, where + " has no " + key + " (required: id, name, price, quantity)");
                return std::nullopt;
            }
        }
        std::vector<std::string> null_keys;  // optional keys set to null: absent
        for (auto it = item.begin(); it != item.end(); ++it) {
            const std::string& key = it.key();
            json& value = it.value();
            std::string expected;
            if (key == "id" || key == "name" || key == "sku" || key == "description" || key == "url" ||
                key == "imageUrl") {
                if (!value.is_string()) expected = "a string";
            } else if (key == "price") {
                if (!value.is_number()) expected = "a number";
            } else if (key == "quantity") {
                if (value.is_number_float()) {
                    const double d = value.get<double>();
                    if (d >= -9.2e18 && d <= 9.2e18 && d == static_cast<double>(static_cast<int64_t>(d)))
                        value = static_cast<int64_t>(d);
                    else
                        expected = "an integer";
                } else if (!value.is_number_integer()) {
                    expected = "an integer";
                }
            } else if (key == "categories") {
                if (!value.is_array()) {
                    expected = "an array of strings";
                } else {
                    for (const json& c : value)
                        if (!c.is_string()) expected = "an array of strings";
                }
            } else if (key == "dataFields") {
                if (!value.is_object()) expected = "an object";
            } else {
                set_error(error, where + " has the key " + sql_quoted(key) +
                                     ", which Iterable's CommerceItem does not have (put it in the item's dataFields)");
                return std::nullopt;
            }
            if (value.is_null()) {  // only optional keys can be null here (required ones were checked)
                null_keys.push_back(key);
            } else if (!expected.empty()) {
                set_error(error, where + "." + key + " must be " + expected);
                return std::nullopt;
            }
        }
        for (const std::string& key : null_keys) item.erase(key);
    }
    return items.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- the request of one row ---------------------------------------------------------------------

BuiltEvent build_event(const EventBuildOptions& options, const EventValues& v,
                       const std::optional<std::string>& cursor_value, std::string_view row_discriminator) {
    BuiltEvent out;
    const EventKind kind = options.kind;
    if (!cursor_value) {
        refuse(out, "invalid_field", "the cursor column is NULL: the row has no place in the stream");
        return out;
    }
    out.record_key = *cursor_value;

    std::string problem;
    // Identity.
    Identity id;
    if (kind == EventKind::EmailChange) {
        if (options.project_type == "email") {  // currentEmail wins over currentUserId
            if (given_email(v.current_email) || !given_user_id(v.current_user_id))
                id = resolve_identity("email", v.current_email, std::nullopt, "currentEmail", "currentUserId");
            else
                id = resolve_identity("user_id", std::nullopt, v.current_user_id, "currentEmail", "currentUserId");
        } else {
            id = resolve_identity(options.project_type, v.current_email, v.current_user_id, "currentEmail",
                                  "currentUserId");
        }
    } else {
        id = resolve_identity(options.project_type, v.email, v.user_id);
    }
    if (!id.error_code.empty()) {
        refuse(out, id.error_code, id.error_message);
        return out;
    }
    out.email = id.email;
    out.user_id = id.user_id;
    out.note = id.note;

    // Fields every kind with dataFields / createdAt / ids shares.
    std::string data_fields;
    if (kind == EventKind::Track || kind == EventKind::Purchase || kind == EventKind::DeviceToken) {
        if (!data_fields_json(v, data_fields, problem)) {
            refuse(out, "invalid_field", problem);
            return out;
        }
    }
    std::optional<int64_t> created_at;
    if ((kind == EventKind::Track || kind == EventKind::Purchase) && v.created_at) {
        created_at = created_at_seconds(*v.created_at, &problem);
        if (!created_at) {
            refuse(out, "invalid_field", problem);
            return out;
        }
    }
    int64_t campaign_id = 0, template_id = 0;
    bool has_campaign = false, has_template = false;
    if (kind == EventKind::Track || kind == EventKind::Purchase) {
        const bool int32 = kind == EventKind::Purchase;  // SPEC: int32 on trackPurchase, int64 on track
        if (!optional_int(v.campaign_id, "campaignId", int32, campaign_id, has_campaign, problem) ||
            !optional_int(v.template_id, "templateId", int32, template_id, has_template, problem)) {
            refuse(out, "invalid_field", problem);
            return out;
        }
        if (non_empty(v.id)) {
            const std::string why = event_id_problem(*v.id);
            if (!why.empty()) {
                refuse(out, "invalid_field", "id " + sql_quoted(*v.id) + " is not a valid Iterable id: " + why);
                return out;
            }
            out.record_key = *v.id;
        } else {
            out.record_key = derive_event_id(options.sync_id, *cursor_value, row_discriminator);
        }
    }
    std::string items;
    if (kind == EventKind::Purchase || kind == EventKind::Cart) {
        if (!v.items || trim(*v.items) == "null") {
            refuse(out, "invalid_field", "items is NULL: Iterable requires the purchased or cart items");
            return out;
        }
        auto normalized = normalize_items(*v.items, &problem);
        if (!normalized) {
            refuse(out, "invalid_field", problem);
            return out;
        }
        items = std::move(*normalized);
    }

    std::string& j = out.json;
    bool first = true;
    j += '{';
    switch (kind) {
        case EventKind::Track: {
            std::string name = non_empty(v.event_name) ? *v.event_name : options.event_name.value_or("");
            if (name.empty()) {
                refuse(out, "invalid_field",
                       v.event_name ? "eventName is empty" : "eventName is NULL: map a column or give event_name");
                return out;
            }
            out.path = "/api/events/trackBulk";
            out.event_name = name;
            member_string(j, first, "eventName", name);
            append_identity(j, first, id);
            member_string(j, first, "id", out.record_key);
            if (created_at) member_int(j, first, "createdAt", *created_at);
            if (!data_fields.empty()) member_raw(j, first, "dataFields", data_fields);
            if (has_campaign) member_int(j, first, "campaignId", campaign_id);
            if (has_template) member_int(j, first, "templateId", template_id);
            break;
        }
        case EventKind::Purchase: {
            const std::string_view total = v.total ? trim(*v.total) : std::string_view();
            if (!v.total || total.empty()) {
                refuse(out, "invalid_field", "total is NULL: Iterable requires the purchase total");
                return out;
            }
            if (!is_json_number(total)) {
                refuse(out, "invalid_field", "total " + sql_quoted(*v.total) + " is not a finite number");
                return out;
            }
            out.path = "/api/commerce/trackPurchase";
            member_string(j, first, "id", out.record_key);
            j += ",\"user\":{";
            bool ufirst = true;
            append_identity(j, ufirst, id);
            j += '}';
            member_raw(j, first, "items", items);
            member_raw(j, first, "total", total);
            if (created_at) member_int(j, first, "createdAt", *created_at);
            if (!data_fields.empty()) member_raw(j, first, "dataFields", data_fields);
            if (has_campaign) member_int(j, first, "campaignId", campaign_id);
            if (has_template) member_int(j, first, "templateId", template_id);
            break;
        }
        case EventKind::Cart: {
            out.path = "/api/commerce/updateCart";
            j += "\"user\":{";
            bool ufirst = true;
            append_identity(j, ufirst, id);
            j += '}';
            first = false;
            member_raw(j, first, "items", items);
            break;
        }
        case EventKind::DeviceToken: {
            if (!non_empty(v.token)) {
                refuse(out, "invalid_field", "token is NULL or empty: Iterable requires the device token");
                return out;
            }
            if (!v.platform || !is_valid_platform(*v.platform)) {
                refuse(out, "invalid_field",
                       v.platform ? "platform " + sql_quoted(*v.platform) + " is not APNS, APNS_SANDBOX or GCM"
                                  : std::string("platform is NULL: it must be APNS, APNS_SANDBOX or GCM"));
                return out;
            }
            if (!non_empty(v.application_name)) {
                refuse(out, "invalid_field",
                       "applicationName is NULL or empty: Iterable requires the name of the app's push integration");
                return out;
            }
            out.path = "/api/users/registerDeviceToken";
            append_identity(j, first, id);
            j += ",\"device\":{";
            bool dfirst = true;
            member_string(j, dfirst, "token", *v.token);
            member_string(j, dfirst, "platform", *v.platform);
            member_string(j, dfirst, "applicationName", *v.application_name);
            if (!data_fields.empty()) member_raw(j, dfirst, "dataFields", data_fields);
            j += '}';
            break;
        }
        case EventKind::BrowserToken: {
            if (!non_empty(v.browser_token)) {
                refuse(out, "invalid_field", "browserToken is NULL or empty");
                return out;
            }
            out.path = "/api/users/registerBrowserToken";
            append_identity(j, first, id);
            member_string(j, first, "browserToken", *v.browser_token);
            break;
        }
        case EventKind::EmailChange: {
            if (!v.new_email || trim(*v.new_email).empty()) {
                refuse(out, "invalid_field", "newEmail is NULL or empty");
                return out;
            }
            const std::optional<std::string> new_email = normalize_email(*v.new_email);
            if (!new_email) {
                refuse(out, "invalid_email", invalid_email_message("newEmail", *v.new_email));
                return out;
            }
            if (options.project_type == "email") {
                out.path = "/api/users/updateEmail";
                if (!id.email.empty())
                    member_string(j, first, "currentEmail", id.email);
                else
                    member_string(j, first, "currentUserId", id.user_id);
                member_string(j, first, "newEmail", *new_email);
            } else {
                // users/update, identified by the userId when there is one (the email is what changes).
                out.path = "/api/users/update";
                if (!id.user_id.empty())
                    member_string(j, first, "userId", id.user_id);
                else
                    member_string(j, first, "email", id.email);
                j += ",\"dataFields\":{";
                bool dfirst = true;
                member_string(j, dfirst, "email", *new_email);
                j += '}';
            }
            break;
        }
    }
    j += '}';
    return out;
}

}  // namespace ia
