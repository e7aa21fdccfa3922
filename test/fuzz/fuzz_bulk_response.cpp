// libFuzzer target: the parsers of Iterable's responses (src/core/iterable_json.hpp).
//
// Input format (so that seeds can be written by hand):
//   up to 8 lines "email|userId" (the subscribers sent; either side may be empty), a blank line,
//   then the response body. Without a blank line the whole input is the body and nothing was sent.
//
// Every input goes through parse_bulk_response (subscribe and unsubscribe), parse_lists_response,
// parse_create_list_response, parse_error_envelope and describe_http_failure. Throwing
// ia::ResponseFormatError is allowed; any other exception escapes and is a crash. Besides the
// sanitizers, the results are checked against a slow reference implementation of the failure
// mapping written here from the contract (iterable_json.hpp, plus the rule for rows sharing an
// email in parse_bulk_response): a change of those rules must change reference_rows() too.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/iterable_json.hpp"
#include "fuzz_check.hpp"

namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxSubscribers = 8;

std::vector<ia::Subscriber> parse_header(std::string_view header) {
    std::vector<ia::Subscriber> out;
    std::size_t start = 0;
    while (start <= header.size() && out.size() < kMaxSubscribers) {
        std::size_t nl = header.find('\n', start);
        if (nl == std::string_view::npos) nl = header.size();
        const std::string_view line = header.substr(start, nl - start);
        ia::Subscriber s;
        const std::size_t bar = line.find('|');
        s.email = std::string(line.substr(0, bar));
        if (bar != std::string_view::npos) s.user_id = std::string(line.substr(bar + 1));
        out.push_back(std::move(s));
        start = nl + 1;
    }
    return out;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

// Is `value` in the array obj[key] (strings only, empty strings ignored)?
bool in_array(const json& obj, const char* key, const std::string& value, bool case_insensitive) {
    if (value.empty() || !obj.is_object()) return false;
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_array()) return false;
    for (const json& v : *it) {
        if (!v.is_string()) continue;
        const std::string& s = v.get_ref<const std::string&>();
        if (s.empty()) continue;
        if (case_insensitive ? iequal(s, value) : s == value) return true;
    }
    return false;
}

bool json_int64(const json& v, int64_t& out) {
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(INT64_MAX)) return false;
        out = static_cast<int64_t>(u);
        return true;
    }
    if (v.is_number_integer()) {
        out = v.get<int64_t>();
        return true;
    }
    return false;
}

struct RefRow {
    std::string code;  // "" = succeeded
    bool attributed = false;
};

// The contract of parse_bulk_response, the slow way (O(rows^2 * failures)).
std::vector<RefRow> reference_rows(const json& j, const std::vector<ia::Subscriber>& sent, ia::BulkAction action) {
    static const json kEmpty = json::object();
    auto fu_it = j.find("failedUpdates");
    const json& fu = (fu_it != j.end() && fu_it->is_object()) ? *fu_it : kEmpty;
    // The per-user failures (an email/userId pair that Iterable refused as a user): their arrays.
    static constexpr const char* kPerUserEmails[] = {"conflictEmails", "invalidDataEmails", "notFoundEmails"};
    static constexpr const char* kPerUserIds[] = {"conflictUserIds", "invalidDataUserIds", "notFoundUserIds"};
    const std::size_t n = sent.size();
    std::vector<RefRow> rows(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::string& e = sent[i].email;
        const std::string& u = sent[i].user_id;
        const bool ef = in_array(fu, "forgottenEmails", e, true), uf = in_array(fu, "forgottenUserIds", u, false);
        const bool ei = in_array(fu, "invalidEmails", e, true) || in_array(j, "invalidEmails", e, true);
        const bool ui = in_array(fu, "invalidUserIds", u, false) || in_array(j, "invalidUserIds", u, false);
        bool ep[3], up[3];  // conflict, invalid data, not found
        for (int c = 0; c < 3; ++c) {
            ep[c] = in_array(fu, kPerUserEmails[c], e, true);
            up[c] = in_array(fu, kPerUserIds[c], u, false);
        }
        // Rows with both identifiers may share an email. A per-user failure listed under such an
        // email belongs only to the sharers whose userId is listed in the same category, when
        // Iterable lists any of them; when it lists none, every sharer fails.
        if (!u.empty() && (ep[0] || ep[1] || ep[2])) {
            std::size_t sharers = 0;
            for (std::size_t k = 0; k < n; ++k)
                if (!sent[k].user_id.empty() && !sent[k].email.empty() && iequal(sent[k].email, e)) ++sharers;
            if (sharers > 1) {
                for (int c = 0; c < 3; ++c) {
                    if (!ep[c] || up[c]) continue;
                    for (std::size_t k = 0; k < n; ++k) {
                        if (!sent[k].user_id.empty() && iequal(sent[k].email, e) &&
                            in_array(fu, kPerUserIds[c], sent[k].user_id, false)) {
                            ep[c] = false;  // the failure is another sharer's
                            break;
                        }
                    }
                }
            }
        }
        RefRow& r = rows[i];
        r.attributed = ef || uf || ei || ui || ep[0] || up[0] || ep[1] || up[1] || ep[2] || up[2];
        if (ef || uf) r.code = "forgotten";
        else if (ei) r.code = "invalid_email";
        else if (ui) r.code = "invalid_user_id";
        else if (ep[0] || up[0]) r.code = "conflict";
        else if (ep[1] || up[1]) r.code = "invalid_data";
        else if ((ep[2] || up[2]) && action == ia::BulkAction::Subscribe) r.code = "not_found";
    }
    return rows;
}

// The error text reaches error columns: one line of valid UTF-8, bounded.
void check_error_text(const std::string& msg) {
    FUZZ_CHECK(fuzz::valid_utf8(msg), "error message is not valid UTF-8");
    FUZZ_CHECK(!fuzz::has_control_char(msg), "error message has a control character");
    FUZZ_CHECK(msg.size() < 1000, "error message of %zu bytes", msg.size());
}

void check_bulk(std::string_view body, const std::vector<ia::Subscriber>& sent) {
    // What the contract says about acceptance.
    const json j = json::parse(body.begin(), body.end(), nullptr, false);
    bool acceptable = !j.is_discarded() && j.is_object();
    int64_t sc = -1, fc = -1;
    if (acceptable) {
        auto s = j.find("successCount");
        auto f = j.find("failCount");
        acceptable = s != j.end() && f != j.end() && json_int64(*s, sc) && json_int64(*f, fc) && sc >= 0 && fc >= 0;
    }

    ia::BulkResponse results[2];
    const ia::BulkAction actions[2] = {ia::BulkAction::Subscribe, ia::BulkAction::Unsubscribe};
    for (int a = 0; a < 2; ++a) {
        try {
            results[a] = ia::parse_bulk_response(body, sent, actions[a]);
        } catch (const ia::ResponseFormatError& e) {
            FUZZ_CHECK(!acceptable, "a body with successCount/failCount was refused: %s", e.what());
            check_error_text(e.what());
            continue;
        }
        FUZZ_CHECK(acceptable, "a body without integer successCount/failCount was accepted");
        const ia::BulkResponse& r = results[a];
        FUZZ_CHECK(r.success_count == sc && r.fail_count == fc, "counts differ from the body");
        FUZZ_CHECK(r.rows.size() == sent.size(), "%zu rows for %zu subscribers", r.rows.size(), sent.size());
        const std::vector<RefRow> ref = reference_rows(j, sent, actions[a]);
        int64_t attributed = 0;
        for (std::size_t i = 0; i < sent.size(); ++i) {
            const ia::RowOutcome& row = r.rows[i];
            FUZZ_CHECK(row.succeeded == row.error_code.empty(), "row %zu: succeeded/error_code disagree", i);
            FUZZ_CHECK(row.succeeded == row.error_message.empty(), "row %zu: succeeded/error_message disagree", i);
            FUZZ_CHECK(row.error_code == ref[i].code, "row %zu (action %d): code '%s', the contract says '%s'", i, a,
                       row.error_code.c_str(), ref[i].code.c_str());
            attributed += ref[i].attributed ? 1 : 0;
        }
        const int64_t expected_unattributed = fc > attributed ? fc - attributed : 0;
        FUZZ_CHECK(r.unattributed_failures == expected_unattributed, "unattributed_failures %lld, expected %lld",
                   static_cast<long long>(r.unattributed_failures), static_cast<long long>(expected_unattributed));
    }
}

void check_lists(std::string_view body) {
    try {
        const std::vector<ia::ListInfo> lists = ia::parse_lists_response(body);
        const json j = json::parse(body.begin(), body.end(), nullptr, false);
        FUZZ_CHECK(!j.is_discarded() && j.is_object() && j.contains("lists") && j["lists"].is_array(),
                   "accepted a body without a lists array");
        FUZZ_CHECK(lists.size() == j["lists"].size(), "%zu lists parsed of %zu", lists.size(), j["lists"].size());
        for (std::size_t i = 0; i < lists.size(); ++i)
            FUZZ_CHECK(lists[i].name == j["lists"][i]["name"].get<std::string>(), "list %zu: name differs", i);
    } catch (const ia::ResponseFormatError& e) {
        check_error_text(e.what());
    }
    try {
        (void)ia::parse_create_list_response(body);
    } catch (const ia::ResponseFormatError& e) {
        check_error_text(e.what());
    }
}

void check_describe(std::string_view body) {
    if (auto env = ia::parse_error_envelope(body)) {
        const json j = json::parse(body.begin(), body.end(), nullptr, false);
        FUZZ_CHECK(!j.is_discarded() && j.is_object(), "an envelope that is not a JSON object");
    }
    for (long status : {400L, 429L, -1L}) {
        const std::string d = ia::describe_http_failure(status, body);
        const std::string prefix = "HTTP " + std::to_string(status);
        FUZZ_CHECK(d.compare(0, prefix.size(), prefix) == 0, "does not start with '%s'", prefix.c_str());
        check_error_text(d);
    }
    // A key-looking value written after "api-key:" is never shown, whatever text comes before it
    // (unless that text contains the same value itself).
    static constexpr const char* kSecret = "Zq7XkWv3Secret";
    if (body.find(kSecret) != std::string_view::npos) return;
    std::string with_key(body);
    with_key += "\n api-key: ";
    with_key += kSecret;
    with_key += "\n";
    const std::string d = ia::describe_http_failure(401, with_key);
    FUZZ_CHECK(d.find(kSecret) == std::string::npos, "the API key leaked: %s", d.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<ia::Subscriber> sent;
    std::string_view body = input;
    const std::size_t sep = input.find("\n\n");
    if (sep != std::string_view::npos) {
        sent = parse_header(input.substr(0, sep));
        body = input.substr(sep + 2);
    }
    check_bulk(body, sent);
    check_lists(body);
    check_describe(body);
    return 0;
}
