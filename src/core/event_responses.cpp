#include "core/event_responses.hpp"

#include <algorithm>
#include <limits>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace ia {
namespace {

using json = nlohmann::json;

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

bool get_count(const json& j, const char* key, int64_t& out) {
    auto it = j.find(key);
    if (it == j.end()) return false;
    if (it->is_number_unsigned()) {
        const auto u = it->get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
        out = static_cast<int64_t>(u);
        return true;
    }
    if (it->is_number_integer()) {
        out = it->get<int64_t>();
        return out >= 0;
    }
    return false;
}

[[noreturn]] void format_error(std::string_view what, std::string_view body) {
    // describe_http_failure folds, truncates and redacts the body.
    std::string shown = describe_http_failure(200, body);
    const std::string prefix = "HTTP 200: ";
    if (shown.compare(0, prefix.size(), prefix) == 0) shown.erase(0, prefix.size());
    throw ResponseFormatError("unexpected trackBulk response from Iterable (" + std::string(what) + "): " + shown);
}

enum Bit : unsigned {
    kForgotten = 1u << 0,
    kInvalid = 1u << 1,
    kNotFound = 1u << 2,
};

// value -> bits, plus the name of the first array that listed it under each bit.
struct Listed {
    unsigned bits = 0;
    const char* forgotten_from = nullptr;
    const char* invalid_from = nullptr;
    const char* not_found_from = nullptr;
};

void mark(std::unordered_map<std::string, Listed>& map, const json& obj, const char* key, unsigned bit,
          const char* name, bool fold_case) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_array()) return;
    for (const json& v : *it) {
        if (!v.is_string()) continue;
        const std::string& s = v.get_ref<const std::string&>();
        if (s.empty()) continue;
        Listed& l = map[fold_case ? lowered(s) : s];
        l.bits |= bit;
        const char** from = bit == kForgotten ? &l.forgotten_from : bit == kInvalid ? &l.invalid_from : &l.not_found_from;
        if (*from == nullptr) *from = name;
    }
}

void fail(EventOutcome& row, const char* code, std::string message) {
    row.succeeded = false;
    row.error_code = code;
    row.error_message = std::move(message);
}

// The value at `field` in a dataFields object: a top-level key, else a dotted path.
const json* find_field(const json& obj, const std::string& field) {
    auto it = obj.find(field);
    if (it != obj.end()) return &*it;
    const json* cur = &obj;
    std::size_t start = 0;
    while (start <= field.size()) {
        std::size_t dot = field.find('.', start);
        if (dot == std::string::npos) dot = field.size();
        if (!cur->is_object()) return nullptr;
        auto next = cur->find(field.substr(start, dot - start));
        if (next == cur->end()) return nullptr;
        cur = &*next;
        start = dot + 1;
    }
    return cur;
}

// Iterable's type names (string, long, double, boolean, date, object, ...; the emulator's "number",
// "array") against a JSON value: whether the value could be of that type.
bool value_fits(const json& v, std::string_view type) {
    if (v.is_null()) return true;
    if (type == "string" || type == "keyword" || type == "text" || type == "date") return v.is_string();
    if (type == "long" || type == "integer") return v.is_number_integer();
    if (type == "double" || type == "float" || type == "number") return v.is_number();
    if (type == "boolean" || type == "bool") return v.is_boolean();
    if (type == "object" || type == "nested") return v.is_object();
    if (type == "array") return v.is_array();
    return true;  // unknown type name: cannot tell
}

std::string code_of(std::string_view body) {
    const auto env = parse_error_envelope(body);
    return env ? env->code : std::string();
}

}  // namespace

TrackBulkResult parse_track_bulk_response(std::string_view body, const std::vector<SentEvent>& sent) {
    const json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) format_error("not JSON", body);
    if (!j.is_object()) format_error("not a JSON object", body);
    TrackBulkResult r;
    if (!get_count(j, "successCount", r.success_count)) format_error("no integer successCount", body);
    if (!get_count(j, "failCount", r.fail_count)) format_error("no integer failCount", body);
    r.rows.resize(sent.size());

    static const json kEmpty = json::object();
    auto fu_it = j.find("failedUpdates");
    const json& fu = (fu_it != j.end() && fu_it->is_object()) ? *fu_it : kEmpty;
    std::unordered_map<std::string, Listed> emails, user_ids;
    mark(emails, fu, "forgottenEmails", kForgotten, "failedUpdates.forgottenEmails", true);
    mark(emails, fu, "invalidEmails", kInvalid, "failedUpdates.invalidEmails", true);
    mark(emails, j, "invalidEmails", kInvalid, "invalidEmails", true);
    mark(emails, fu, "notFoundEmails", kNotFound, "failedUpdates.notFoundEmails", true);
    mark(user_ids, fu, "forgottenUserIds", kForgotten, "failedUpdates.forgottenUserIds", false);
    mark(user_ids, fu, "invalidUserIds", kInvalid, "failedUpdates.invalidUserIds", false);
    mark(user_ids, j, "invalidUserIds", kInvalid, "invalidUserIds", false);
    mark(user_ids, fu, "notFoundUserIds", kNotFound, "failedUpdates.notFoundUserIds", false);
    std::unordered_map<std::string, bool> disallowed;
    if (auto it = j.find("disallowedEventNames"); it != j.end() && it->is_array())
        for (const json& v : *it)
            if (v.is_string()) disallowed[v.get<std::string>()] = true;

    int64_t attributed = 0;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const SentEvent& s = sent[i];
        const Listed* e = nullptr;
        const Listed* u = nullptr;
        if (!s.email.empty() && !emails.empty()) {
            auto it = emails.find(lowered(s.email));
            if (it != emails.end()) e = &it->second;
        }
        if (!s.user_id.empty() && !user_ids.empty()) {
            auto it = user_ids.find(s.user_id);
            if (it != user_ids.end()) u = &it->second;
        }
        EventOutcome& row = r.rows[i];
        const std::string prefix = "Iterable refused the event: ";
        if (e && (e->bits & kForgotten)) {
            fail(row, "forgotten", prefix + e->forgotten_from + " (the user is forgotten, GDPR)");
        } else if (u && (u->bits & kForgotten)) {
            fail(row, "forgotten", prefix + u->forgotten_from + " (the user is forgotten, GDPR)");
        } else if (e && (e->bits & kInvalid)) {
            fail(row, "invalid_email", prefix + e->invalid_from);
        } else if (u && (u->bits & kInvalid)) {
            fail(row, "invalid_user_id", prefix + u->invalid_from);
        } else if (e && (e->bits & kNotFound)) {
            fail(row, "not_found", prefix + e->not_found_from + " (no such user)");
        } else if (u && (u->bits & kNotFound)) {
            fail(row, "not_found", prefix + u->not_found_from + " (no such user)");
        } else if (!disallowed.empty() && disallowed.count(s.event_name)) {
            fail(row, "disallowed_event_name",
                 prefix + "disallowedEventNames (the project does not accept the event name)");
        } else {
            continue;
        }
        ++attributed;
    }
    r.unattributed_failures = std::max<int64_t>(0, r.fail_count - attributed);
    return r;
}

std::vector<FieldMismatch> parse_fields_mismatch(std::string_view body) {
    std::vector<FieldMismatch> out;
    const json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return out;
    auto params = j.find("params");
    if (params == j.end() || !params->is_object()) return out;
    auto errors = params->find("validationErrors");
    if (errors == params->end() || !errors->is_object()) return out;
    for (auto it = errors->begin(); it != errors->end(); ++it) {
        FieldMismatch m;
        m.field = it.key();
        const json& v = it.value();
        if (v.is_object()) {
            if (auto e = v.find("expectedType"); e != v.end() && e->is_string()) m.expected_type = e->get<std::string>();
            if (auto c = v.find("category"); c != v.end() && c->is_string()) m.category = c->get<std::string>();
            if (auto o = v.find("offendingValue"); o != v.end())
                m.offending_value = o->dump(-1, ' ', false, json::error_handler_t::replace);
        }
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<std::size_t> mismatch_suspects(const std::vector<FieldMismatch>& mismatches,
                                           const std::vector<std::string>& data_fields_json) {
    std::vector<std::size_t> out;
    if (mismatches.empty()) return out;
    std::vector<json> offending(mismatches.size());
    for (std::size_t m = 0; m < mismatches.size(); ++m) {
        if (mismatches[m].offending_value.empty()) continue;
        offending[m] = json::parse(mismatches[m].offending_value, nullptr, /*allow_exceptions=*/false);
    }
    for (std::size_t i = 0; i < data_fields_json.size(); ++i) {
        if (data_fields_json[i].empty()) continue;
        const json data = json::parse(data_fields_json[i], nullptr, /*allow_exceptions=*/false);
        if (data.is_discarded() || !data.is_object()) continue;
        for (std::size_t m = 0; m < mismatches.size(); ++m) {
            const json* value = find_field(data, mismatches[m].field);
            if (value == nullptr || value->is_null()) continue;
            const bool has_offending = !mismatches[m].offending_value.empty() && !offending[m].is_discarded();
            const bool suspect = has_offending ? *value == offending[m]
                                               : !value_fits(*value, mismatches[m].expected_type);
            if (suspect) {
                out.push_back(i);
                break;
            }
        }
    }
    return out;
}

BulkFailure classify_track_bulk_failure(long status, std::string_view body, std::size_t events_sent) {
    BulkFailure f;
    f.message = describe_http_failure(status, body);
    if (status == 0 || status == 429 || status >= 500) {
        f.action = BulkRefusal::Retry;
        return f;
    }
    const std::string code = code_of(body);
    if (status == 413 || code == "BatchTooLarge") {
        f.action = BulkRefusal::TooLarge;
        return f;
    }
    if (status != 400) {
        f.action = BulkRefusal::Fatal;
        return f;
    }
    if (code == "RequestFieldsTypesMismatched") {
        f.action = BulkRefusal::SplitTypes;
        f.mismatches = parse_fields_mismatch(body);
        return f;
    }
    if (code == "BadJsonBody") {
        const json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
        if (!j.is_discarded() && j.is_object()) {
            auto params = j.find("params");
            if (params != j.end() && params->is_object()) {
                constexpr std::string_view kPrefix = "obj.events[";
                for (auto it = params->begin(); it != params->end(); ++it) {
                    const std::string& key = it.key();
                    if (key.compare(0, kPrefix.size(), kPrefix) != 0) continue;
                    std::size_t index = 0, p = kPrefix.size();
                    bool digits = false, overflow = false;
                    while (p < key.size() && key[p] >= '0' && key[p] <= '9') {
                        if (index > (std::numeric_limits<std::size_t>::max() - 9) / 10) overflow = true;
                        index = index * 10 + static_cast<std::size_t>(key[p] - '0');
                        digits = true;
                        ++p;
                    }
                    if (digits && !overflow && p < key.size() && key[p] == ']' && index < events_sent)
                        f.records.push_back(index);
                }
            }
        }
        std::sort(f.records.begin(), f.records.end());
        f.records.erase(std::unique(f.records.begin(), f.records.end()), f.records.end());
        f.action = f.records.empty() ? BulkRefusal::SendSingly : BulkRefusal::BadRecords;
        return f;
    }
    f.action = BulkRefusal::SendSingly;
    return f;
}

SingleOutcome classify_single_response(EventKind kind, long status, std::string_view body) {
    SingleOutcome o;
    if (status >= 200 && status < 300) {
        if (kind == EventKind::Track) {
            const auto env = parse_error_envelope(body);
            if (env && env->msg.find("disallowed from tracking") != std::string::npos) {
                o.disposition = Disposition::Failed;
                o.error_code = "disallowed_event_name";
                o.error_message = describe_http_failure(status, body);
            }
        }
        return o;
    }
    o.error_message = describe_http_failure(status, body);
    if (status == 0 || status == 429 || status >= 500) {
        o.disposition = Disposition::Retry;
        o.error_code = status == 429 ? "rate_limited" : "http_error";
        return o;
    }
    if (status == 401 || status == 403 || status == 404 || status < 200 || (status >= 300 && status < 400)) {
        o.disposition = Disposition::Fatal;
        o.error_code = "http_error";
        return o;
    }
    o.disposition = Disposition::Failed;
    const auto env = parse_error_envelope(body);
    const std::string code = env ? env->code : std::string();
    const std::string msg = env ? env->msg : std::string();
    if (code == "InvalidEmailAddressError") {
        o.error_code = "invalid_email";
    } else if (code == "InvalidUserIdError") {
        o.error_code = "invalid_user_id";
    } else if (code == "UnknownEmailError" || code == "UnknownUserIdError" ||
               (code == "BadParams" && msg.find("does not exist") != std::string::npos)) {
        o.error_code = "not_found";
    } else if (code == "ForgottenUserError") {
        o.error_code = "forgotten";
    } else if (code == "EmailAlreadyExists" || code == "UserIdAlreadyExists" || status == 409) {
        o.error_code = "conflict";
    } else if (code == "RequestFieldsTypesMismatched") {
        o.error_code = "invalid_data";
    } else if (code == "BadJsonBody") {
        o.error_code = "invalid_field";
    } else if (status == 413 || code == "BatchTooLarge") {
        o.error_code = "too_large";
    } else {
        o.error_code = "http_error";
    }
    return o;
}

bool is_permanent_error(std::string_view code) {
    return code == "invalid_email" || code == "invalid_user_id" || code == "missing_identifier" ||
           code == "invalid_field" || code == "invalid_data" || code == "too_large" || code == "forgotten";
}

}  // namespace ia
