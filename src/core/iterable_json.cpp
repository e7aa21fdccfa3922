#include "core/iterable_json.hpp"
#include "core/redaction.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace ia {
namespace {

using json = nlohmann::json;

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence starting at p[0] (1-4), or, as a negative number, the
// length of the maximal invalid subpart to replace by one U+FFFD (Unicode 15, section 3.9, Table 3-7).
int utf8_sequence(const unsigned char* p, std::size_t avail) {
    const unsigned char c = p[0];
    if (c < 0x80) return 1;
    int len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
        return -1;  // 0x80-0xC1 (continuation or overlong lead), 0xF5-0xFF
    }
    for (int i = 1; i < len; ++i) {
        if (static_cast<std::size_t>(i) >= avail) return -i;
        const unsigned char b = p[i];
        const unsigned char l = (i == 1) ? lo : 0x80;
        const unsigned char h = (i == 1) ? hi : 0xBF;
        if (b < l || b > h) return -i;
    }
    return len;
}

// 0: copy as is; 1: needs an escape; 2: non-ASCII (validate UTF-8).
struct EscapeTable {
    unsigned char cls[256];
    constexpr EscapeTable() : cls{} {
        for (int i = 0; i < 256; ++i) cls[i] = 0;
        for (int i = 0; i < 0x20; ++i) cls[i] = 1;
        cls[static_cast<unsigned char>('"')] = 1;
        cls[static_cast<unsigned char>('\\')] = 1;
        for (int i = 0x80; i < 256; ++i) cls[i] = 2;
    }
};
constexpr EscapeTable kEscape{};

void append_int(std::string& out, int64_t v) {
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(res.ptr - buf));
}

bool is_absent_json(std::string_view s) { return s.empty() || s == "null"; }

// "<key>":[{"email":..,"userId":..,"dataFields":..<record_suffix>},...]
void append_records(std::string& out, const char* key, const std::vector<Subscriber>& subscribers,
                    bool with_data_fields, std::string_view record_suffix = {}) {
    out += '"';
    out += key;
    out += "\":[";
    bool first = true;
    for (const Subscriber& s : subscribers) {
        if (!first) out += ',';
        first = false;
        out += '{';
        bool need_comma = false;
        if (!s.email.empty()) {
            out += "\"email\":";
            append_json_string(out, s.email);
            need_comma = true;
        }
        if (!s.user_id.empty()) {
            if (need_comma) out += ',';
            out += "\"userId\":";
            append_json_string(out, s.user_id);
            need_comma = true;
        }
        if (with_data_fields && !is_absent_json(s.data_fields_json)) {
            if (need_comma) out += ',';
            out += "\"dataFields\":";
            out += s.data_fields_json;
            need_comma = true;
        }
        if (!record_suffix.empty()) {
            if (need_comma) out += ',';
            out += record_suffix;
        }
        out += '}';
    }
    out += ']';
}

std::size_t estimate_size(const std::vector<Subscriber>& subscribers, bool with_data_fields) {
    std::size_t n = 128;
    for (const Subscriber& s : subscribers) {
        n += 40 + s.email.size() + s.user_id.size();
        if (with_data_fields) n += s.data_fields_json.size() + 14;
    }
    return n;
}

// ---- text for error columns -------------------------------------------------------------------

constexpr std::size_t kMaxShownBytes = 200;

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Folds `text` into one line of at most ~kMaxShownBytes bytes of valid UTF-8 (see the header).
std::string one_line(std::string_view text, bool strip_tags) {
    std::string out;
    out.reserve(std::min(text.size(), kMaxShownBytes) + 8);
    bool pending_space = false;
    bool in_tag = false;
    bool truncated = false;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    std::size_t i = 0;
    while (i < text.size()) {
        const unsigned char c = p[i];
        if (strip_tags) {
            if (in_tag) {
                if (c == '>') {
                    in_tag = false;
                    pending_space = true;
                }
                ++i;
                continue;
            }
            if (c == '<') {
                in_tag = true;
                pending_space = true;
                ++i;
                continue;
            }
        }
        if (c < 0x20 || c == 0x7F || c == ' ') {
            pending_space = true;
            ++i;
            continue;
        }
        int len = utf8_sequence(p + i, text.size() - i);
        const std::string_view piece = len > 0 ? text.substr(i, static_cast<std::size_t>(len)) : kReplacementChar;
        const std::size_t add = piece.size() + ((pending_space && !out.empty()) ? 1 : 0);
        if (out.size() + add > kMaxShownBytes) {
            truncated = true;
            break;
        }
        if (pending_space && !out.empty()) out += ' ';
        pending_space = false;
        out.append(piece.data(), piece.size());
        i += static_cast<std::size_t>(len > 0 ? len : -len);
    }
    if (truncated) out += "...";
    return redact_secret(out, {});  // the header-name rule (the key itself is gone already)
}

std::string body_snippet(std::string_view body) {
    std::string s = one_line(body, false);
    return s.empty() ? std::string("(empty body)") : s;
}

[[noreturn]] void format_error(std::string_view what, std::string_view body) {
    std::string msg = "unexpected response from Iterable (";
    msg.append(what.data(), what.size());
    msg += "): ";
    msg += body_snippet(body);
    throw ResponseFormatError(msg);
}

json parse_or_throw(std::string_view body) {
    json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) format_error("not JSON", body);
    if (!j.is_object()) format_error("not a JSON object", body);
    return j;
}

// Integer JSON value (signed or unsigned within int64 range).
bool get_int64(const json& v, int64_t& out) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
        out = static_cast<int64_t>(u);
        return true;
    }
    if (v.is_number_integer()) {
        out = v.get<int64_t>();
        return true;
    }
    return false;
}

// ---- failure mapping ------------------------------------------------------------------------

struct CaseInsensitiveHash {
    std::size_t operator()(std::string_view s) const noexcept {
        uint64_t h = 1469598103934665603ULL;  // FNV-1a
        for (char c : s) {
            h ^= static_cast<unsigned char>(ascii_lower(c));
            h *= 1099511628211ULL;
        }
        return static_cast<std::size_t>(h);
    }
};
struct CaseInsensitiveEqual {
    bool operator()(std::string_view a, std::string_view b) const noexcept {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
        return true;
    }
};

enum FailBit : unsigned {
    kForgotten = 1u << 0,
    kInvalid = 1u << 1,     // failedUpdates.invalid{Emails,UserIds}
    kInvalidTop = 1u << 2,  // deprecated top-level invalid{Emails,UserIds}
    kConflict = 1u << 3,
    kInvalidData = 1u << 4,
    kNotFound = 1u << 5,
};

using EmailMap = std::unordered_map<std::string_view, unsigned, CaseInsensitiveHash, CaseInsensitiveEqual>;
using UserIdMap = std::unordered_map<std::string_view, unsigned>;

std::size_t array_size(const json& obj, const char* key) {
    auto it = obj.find(key);
    return (it != obj.end() && it->is_array()) ? it->size() : 0;
}

template <class Map>
void mark(Map& map, const json& obj, const char* key, unsigned bit) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_array()) return;
    for (const json& v : *it) {
        if (!v.is_string()) continue;
        const std::string& s = v.get_ref<const std::string&>();
        if (s.empty()) continue;
        map[std::string_view(s)] |= bit;
    }
}

void fail(RowOutcome& row, const char* code, const char* message) {
    row.succeeded = false;
    row.error_code = code;
    row.error_message = message;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t run = 0;  // start of the pending run of bytes copied verbatim
    std::size_t i = 0;
    while (i < n) {
        const unsigned char cls = kEscape.cls[p[i]];
        if (cls == 0) {
            ++i;
            continue;
        }
        if (cls == 2) {
            const int len = utf8_sequence(p + i, n - i);
            if (len > 0) {
                i += static_cast<std::size_t>(len);
                continue;
            }
            out.append(s.data() + run, i - run);
            out.append(kReplacementChar.data(), kReplacementChar.size());
            i += static_cast<std::size_t>(-len);
            run = i;
            continue;
        }
        out.append(s.data() + run, i - run);
        const unsigned char c = p[i];
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default: {
                static constexpr char hex[] = "0123456789abcdef";
                char buf[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                out.append(buf, 6);
            }
        }
        ++i;
        run = i;
    }
    out.append(s.data() + run, n - run);
    out += '"';
}

void append_subscribe_body(std::string& out, int64_t list_id, const std::vector<Subscriber>& subscribers,
                           bool update_existing_users_only) {
    out.reserve(out.size() + estimate_size(subscribers, true));
    out += "{\"listId\":";
    append_int(out, list_id);
    out += ',';
    append_records(out, "subscribers", subscribers, true);
    out += update_existing_users_only ? ",\"updateExistingUsersOnly\":true}" : ",\"updateExistingUsersOnly\":false}";
}

void append_unsubscribe_body(std::string& out, int64_t list_id, const std::vector<Subscriber>& subscribers,
                             std::optional<int64_t> campaign_id, bool channel_unsubscribe) {
    out.reserve(out.size() + estimate_size(subscribers, false));
    out += "{\"listId\":";
    append_int(out, list_id);
    out += ',';
    append_records(out, "subscribers", subscribers, false);
    if (campaign_id) {
        out += ",\"campaignId\":";
        append_int(out, *campaign_id);
    }
    out += channel_unsubscribe ? ",\"channelUnsubscribe\":true}" : ",\"channelUnsubscribe\":false}";
}

void append_bulk_update_body(std::string& out, const std::vector<Subscriber>& users, bool prefer_user_id,
                             bool merge_nested_objects) {
    std::string flags;
    if (prefer_user_id) flags += "\"preferUserId\":true";
    if (merge_nested_objects) flags += flags.empty() ? "\"mergeNestedObjects\":true" : ",\"mergeNestedObjects\":true";
    out.reserve(out.size() + estimate_size(users, true) + users.size() * flags.size());
    out += '{';
    append_records(out, "users", users, true, flags);
    out += '}';
}

BulkResponse parse_bulk_response(std::string_view body, const std::vector<Subscriber>& sent, BulkAction action) {
    const json j = parse_or_throw(body);
    BulkResponse r;
    {
        auto sc = j.find("successCount");
        auto fc = j.find("failCount");
        if (sc == j.end() || !get_int64(*sc, r.success_count) || r.success_count < 0)
            format_error("no integer successCount", body);
        if (fc == j.end() || !get_int64(*fc, r.fail_count) || r.fail_count < 0)
            format_error("no integer failCount", body);
    }
    r.rows.resize(sent.size());

    static const json kEmptyObject = json::object();
    auto fu_it = j.find("failedUpdates");
    const json& fu = (fu_it != j.end() && fu_it->is_object()) ? *fu_it : kEmptyObject;

    EmailMap emails;
    UserIdMap user_ids;
    emails.reserve(array_size(fu, "forgottenEmails") + array_size(fu, "invalidEmails") +
                   array_size(j, "invalidEmails") + array_size(fu, "conflictEmails") +
                   array_size(fu, "invalidDataEmails") + array_size(fu, "notFoundEmails"));
    user_ids.reserve(array_size(fu, "forgottenUserIds") + array_size(fu, "invalidUserIds") +
                     array_size(j, "invalidUserIds") + array_size(fu, "conflictUserIds") +
                     array_size(fu, "invalidDataUserIds") + array_size(fu, "notFoundUserIds"));
    mark(emails, fu, "forgottenEmails", kForgotten);
    mark(emails, fu, "invalidEmails", kInvalid);
    mark(emails, j, "invalidEmails", kInvalidTop);
    mark(emails, fu, "conflictEmails", kConflict);
    mark(emails, fu, "invalidDataEmails", kInvalidData);
    mark(emails, fu, "notFoundEmails", kNotFound);
    mark(user_ids, fu, "forgottenUserIds", kForgotten);
    mark(user_ids, fu, "invalidUserIds", kInvalid);
    mark(user_ids, j, "invalidUserIds", kInvalidTop);
    mark(user_ids, fu, "conflictUserIds", kConflict);
    mark(user_ids, fu, "invalidDataUserIds", kInvalidData);
    mark(user_ids, fu, "notFoundUserIds", kNotFound);

    if (emails.empty() && user_ids.empty()) {
        r.unattributed_failures = r.fail_count;
        return r;
    }

    // What each row matched: flags from the *Emails arrays (e) and from the *UserIds arrays (u).
    std::vector<unsigned> row_e(sent.size(), 0), row_u(sent.size(), 0);
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const Subscriber& s = sent[i];
        if (!s.email.empty() && !emails.empty()) {
            auto it = emails.find(std::string_view(s.email));
            if (it != emails.end()) row_e[i] = it->second;
        }
        if (!s.user_id.empty() && !user_ids.empty()) {
            auto it = user_ids.find(std::string_view(s.user_id));
            if (it != user_ids.end()) row_u[i] = it->second;
        }
    }
    // Rows keyed by userId may share an email. A per-user failure (conflict, not found, bad data)
    // listed under such an email belongs to the rows whose userId Iterable lists too, when it lists
    // any; only when it lists none can it not be told apart, and then every sharer fails.
    constexpr unsigned kPerUser = kConflict | kInvalidData | kNotFound;
    EmailMap shared;  // email -> per-user flags confirmed by some sharer's userId, for emails of >1 row
    {
        EmailMap uses;
        for (const Subscriber& s : sent)
            if (!s.email.empty() && !s.user_id.empty()) ++uses[std::string_view(s.email)];
        for (std::size_t i = 0; i < sent.size(); ++i) {
            const Subscriber& s = sent[i];
            if ((row_e[i] & kPerUser) == 0 || s.user_id.empty()) continue;
            auto it = uses.find(std::string_view(s.email));
            if (it != uses.end() && it->second > 1) shared[std::string_view(s.email)] |= row_u[i] & kPerUser;
        }
    }

    int64_t attributed = 0;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const Subscriber& s = sent[i];
        unsigned e = row_e[i], u = row_u[i];
        if ((e & kPerUser) && !s.user_id.empty()) {
            auto it = shared.find(std::string_view(s.email));
            if (it != shared.end()) e &= ~(it->second & ~u);  // confirmed for another sharer, not this one
        }
        if ((e | u) == 0) continue;
        ++attributed;
        RowOutcome& row = r.rows[i];
        if (e & kForgotten) {
            fail(row, "forgotten", "Iterable refused the user, who is forgotten (GDPR): failedUpdates.forgottenEmails");
        } else if (u & kForgotten) {
            fail(row, "forgotten", "Iterable refused the user, who is forgotten (GDPR): failedUpdates.forgottenUserIds");
        } else if (e & kInvalid) {
            fail(row, "invalid_email", "Iterable rejected the email: failedUpdates.invalidEmails");
        } else if (e & kInvalidTop) {
            fail(row, "invalid_email", "Iterable rejected the email: invalidEmails");
        } else if (u & kInvalid) {
            fail(row, "invalid_user_id", "Iterable rejected the userId: failedUpdates.invalidUserIds");
        } else if (u & kInvalidTop) {
            fail(row, "invalid_user_id", "Iterable rejected the userId: invalidUserIds");
        } else if (e & kConflict) {
            fail(row, "conflict", "Iterable reported an email/userId conflict: failedUpdates.conflictEmails");
        } else if (u & kConflict) {
            fail(row, "conflict", "Iterable reported an email/userId conflict: failedUpdates.conflictUserIds");
        } else if (e & kInvalidData) {
            fail(row, "invalid_data", "Iterable rejected the dataFields: failedUpdates.invalidDataEmails");
        } else if (u & kInvalidData) {
            fail(row, "invalid_data", "Iterable rejected the dataFields: failedUpdates.invalidDataUserIds");
        } else if (action == BulkAction::Subscribe) {  // only kNotFound is left
            if (e & kNotFound)
                fail(row, "not_found", "Iterable found no such user: failedUpdates.notFoundEmails");
            else
                fail(row, "not_found", "Iterable found no such user: failedUpdates.notFoundUserIds");
        }
        // Unsubscribe + not found: the user is already off the list; the row succeeded.
    }
    r.unattributed_failures = r.fail_count > attributed ? r.fail_count - attributed : 0;
    return r;
}

std::vector<ListInfo> parse_lists_response(std::string_view body) {
    const json j = parse_or_throw(body);
    auto lists = j.find("lists");
    if (lists == j.end() || !lists->is_array()) format_error("no \"lists\" array", body);
    std::vector<ListInfo> out;
    out.reserve(lists->size());
    for (const json& l : *lists) {
        if (!l.is_object()) format_error("a list is not an object", body);
        ListInfo info;
        auto id = l.find("id");
        if (id == l.end() || !get_int64(*id, info.id)) format_error("a list has no integer id", body);
        auto name = l.find("name");
        if (name == l.end() || !name->is_string()) format_error("a list has no string name", body);
        info.name = name->get<std::string>();
        auto type = l.find("listType");
        if (type != l.end() && !type->is_null()) {
            if (!type->is_string()) format_error("a list's listType is not a string", body);
            info.list_type = type->get<std::string>();
        }
        auto created = l.find("createdAt");
        if (created != l.end() && !created->is_null()) {
            if (!get_int64(*created, info.created_at_ms)) {
                // Tolerate an integral floating-point value (e.g. 1505330681211.0).
                if (!created->is_number_float()) format_error("a list's createdAt is not a number", body);
                const double d = created->get<double>();
                if (!(d >= -9.2e18 && d <= 9.2e18) || static_cast<double>(static_cast<int64_t>(d)) != d)
                    format_error("a list's createdAt is not an integer", body);
                info.created_at_ms = static_cast<int64_t>(d);
            }
        }
        auto desc = l.find("description");
        if (desc != l.end() && !desc->is_null()) {
            if (!desc->is_string()) format_error("a list's description is not a string", body);
            info.description = desc->get<std::string>();
        }
        out.push_back(std::move(info));
    }
    return out;
}

int64_t parse_create_list_response(std::string_view body) {
    const json j = parse_or_throw(body);
    auto id = j.find("listId");
    int64_t v = 0;
    if (id == j.end() || !get_int64(*id, v)) format_error("no integer listId", body);
    return v;
}

std::string build_create_list_body(std::string_view name, std::optional<std::string_view> description) {
    std::string out;
    out.reserve(32 + name.size() + (description ? description->size() : 0));
    out += "{\"name\":";
    append_json_string(out, name);
    if (description) {
        out += ",\"description\":";
        append_json_string(out, *description);
    }
    out += '}';
    return out;
}

std::optional<ApiError> parse_error_envelope(std::string_view body) {
    // Cheap pre-check: an envelope is a JSON object.
    std::size_t k = 0;
    while (k < body.size() && (body[k] == ' ' || body[k] == '\t' || body[k] == '\r' || body[k] == '\n')) ++k;
    if (k == body.size() || body[k] != '{') return std::nullopt;
    const json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    auto code = j.find("code");
    auto msg = j.find("msg");
    const bool has_code = code != j.end() && code->is_string();
    const bool has_msg = msg != j.end() && msg->is_string();
    if (!has_code && !has_msg) return std::nullopt;
    ApiError e;
    if (has_code) e.code = code->get<std::string>();
    if (has_msg) e.msg = msg->get<std::string>();
    return e;
}

std::string describe_http_failure(long status, std::string_view body) {
    std::string out = "HTTP ";
    out += std::to_string(status);
    if (auto env = parse_error_envelope(body)) {
        const std::string code = one_line(env->code, false);
        if (!code.empty() && code != "Success") {
            out += ' ';
            out += code;
        }
        const std::string msg = one_line(env->msg, false);
        if (!msg.empty()) {
            out += ": ";
            out += msg;
        }
        return out;
    }
    std::size_t k = 0;
    while (k < body.size() && static_cast<unsigned char>(body[k]) <= 0x20) ++k;
    const bool html = k < body.size() && body[k] == '<';
    const std::string text = one_line(body, html);
    if (!text.empty()) {
        out += ": ";
        out += text;
    }
    return out;
}

}  // namespace ia
