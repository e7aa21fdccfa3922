// libFuzzer target: the parsers of Iterable's answers to event-sync requests
// (src/core/event_responses.hpp).
//
// Input format (so that seeds can be written by hand):
//   up to 8 lines "email|userId|eventName" (the events sent; any part may be empty), a blank line,
//   then the response body. Without a blank line the whole input is the body and nothing was sent.
//
// Every input goes through parse_track_bulk_response, classify_track_bulk_failure (several
// statuses), parse_fields_mismatch, mismatch_suspects (the body also taken as dataFields) and
// classify_single_response. Throwing ia::ResponseFormatError from parse_track_bulk_response is
// allowed; any other exception escapes and is a crash. Besides the sanitizers, the per-event
// outcomes are checked against a slow reference of the mapping written here from the header's
// contract: a change of those rules must change reference_code() too.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/event_responses.hpp"
#include "fuzz_check.hpp"

namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxEvents = 8;

std::vector<ia::SentEvent> parse_header(std::string_view header) {
    std::vector<ia::SentEvent> out;
    std::size_t start = 0;
    while (start <= header.size() && out.size() < kMaxEvents) {
        std::size_t nl = header.find('\n', start);
        if (nl == std::string_view::npos) nl = header.size();
        std::string_view line = header.substr(start, nl - start);
        ia::SentEvent e;
        const std::size_t a = line.find('|');
        e.email = std::string(line.substr(0, a));
        if (a != std::string_view::npos) {
            line.remove_prefix(a + 1);
            const std::size_t b = line.find('|');
            e.user_id = std::string(line.substr(0, b));
            if (b != std::string_view::npos) e.event_name = std::string(line.substr(b + 1));
        }
        out.push_back(std::move(e));
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

bool listed(const json& obj, const char* key, const std::string& value, bool fold_case) {
    if (value.empty() || !obj.is_object()) return false;
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_array()) return false;
    for (const json& v : *it) {
        if (!v.is_string()) continue;
        const std::string& s = v.get_ref<const std::string&>();
        if (s.empty()) continue;
        if (fold_case ? iequal(s, value) : s == value) return true;
    }
    return false;
}

// The contract of parse_track_bulk_response, written again (slowly).
std::string reference_code(const json& j, const ia::SentEvent& e) {
    const json empty = json::object();
    const json& fu = j.contains("failedUpdates") && j["failedUpdates"].is_object() ? j["failedUpdates"] : empty;
    if (listed(fu, "forgottenEmails", e.email, true) || listed(fu, "forgottenUserIds", e.user_id, false))
        return "forgotten";
    if (listed(fu, "invalidEmails", e.email, true) || listed(j, "invalidEmails", e.email, true)) return "invalid_email";
    if (listed(fu, "invalidUserIds", e.user_id, false) || listed(j, "invalidUserIds", e.user_id, false))
        return "invalid_user_id";
    if (listed(fu, "notFoundEmails", e.email, true) || listed(fu, "notFoundUserIds", e.user_id, false))
        return "not_found";
    if (j.contains("disallowedEventNames") && j["disallowedEventNames"].is_array())
        for (const json& v : j["disallowedEventNames"])
            if (v.is_string() && v.get<std::string>() == e.event_name) return "disallowed_event_name";
    return "";
}

void check_track_bulk(std::string_view body, const std::vector<ia::SentEvent>& sent) {
    ia::TrackBulkResult r;
    try {
        r = ia::parse_track_bulk_response(body, sent);
    } catch (const ia::ResponseFormatError& e) {
        FUZZ_CHECK(fuzz::valid_utf8(e.what()), "error message not UTF-8");
        return;
    }
    FUZZ_CHECK(r.rows.size() == sent.size(), "%zu rows for %zu events", r.rows.size(), sent.size());
    FUZZ_CHECK(r.success_count >= 0 && r.fail_count >= 0, "negative counts");
    FUZZ_CHECK(r.unattributed_failures >= 0 && r.unattributed_failures <= r.fail_count, "unattributed out of range");
    const json j = json::parse(body.begin(), body.end());  // parsed above, so valid
    int64_t failed = 0;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const ia::EventOutcome& row = r.rows[i];
        const std::string want = reference_code(j, sent[i]);
        FUZZ_CHECK(row.succeeded == want.empty(), "row %zu: succeeded=%d, reference '%s'", i, row.succeeded,
                   want.c_str());
        FUZZ_CHECK(row.error_code == want, "row %zu: code '%s', reference '%s'", i, row.error_code.c_str(),
                   want.c_str());
        FUZZ_CHECK(row.succeeded == row.error_message.empty(), "row %zu: message without failure", i);
        if (!row.succeeded) ++failed;
    }
    FUZZ_CHECK(r.unattributed_failures == (r.fail_count > failed ? r.fail_count - failed : 0),
               "unattributed %lld, failCount %lld, failed rows %lld", static_cast<long long>(r.unattributed_failures),
               static_cast<long long>(r.fail_count), static_cast<long long>(failed));
}

void check_failures(std::string_view body, std::size_t events) {
    static const std::set<std::string> kSingleCodes = {"",          "invalid_email", "invalid_user_id", "not_found",
                                                       "forgotten", "conflict",      "invalid_data",    "invalid_field",
                                                       "too_large", "http_error",    "rate_limited",
                                                       "disallowed_event_name"};
    for (long status : {0L, 200L, 400L, 401L, 409L, 413L, 429L, 500L}) {
        const ia::BulkFailure f = ia::classify_track_bulk_failure(status, body, events);
        FUZZ_CHECK(fuzz::valid_utf8(f.message) && !fuzz::has_control_char(f.message), "bad failure message");
        for (std::size_t k = 0; k < f.records.size(); ++k) {
            FUZZ_CHECK(f.records[k] < events, "record index out of range");
            FUZZ_CHECK(k == 0 || f.records[k - 1] < f.records[k], "record indexes not ascending and unique");
        }
        FUZZ_CHECK(f.action != ia::BulkRefusal::BadRecords || !f.records.empty(), "BadRecords without records");
        for (ia::EventKind kind : {ia::EventKind::Track, ia::EventKind::Purchase, ia::EventKind::EmailChange}) {
            const ia::SingleOutcome o = ia::classify_single_response(kind, status, body);
            FUZZ_CHECK(kSingleCodes.count(o.error_code) == 1, "unknown code '%s'", o.error_code.c_str());
            FUZZ_CHECK((o.disposition == ia::Disposition::Succeeded) == o.error_code.empty(), "code without failure");
            FUZZ_CHECK(fuzz::valid_utf8(o.error_message), "bad single message");
        }
    }
    const std::vector<ia::FieldMismatch> mismatches = ia::parse_fields_mismatch(body);
    const std::vector<std::string> data = {std::string(body), "{}", ""};
    const std::vector<std::size_t> suspects = ia::mismatch_suspects(mismatches, data);
    for (std::size_t k = 0; k < suspects.size(); ++k) {
        FUZZ_CHECK(suspects[k] < data.size() && (k == 0 || suspects[k - 1] < suspects[k]), "bad suspects");
        FUZZ_CHECK(suspects[k] == 0, "a record without the field is a suspect");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<ia::SentEvent> sent;
    std::string_view body = input;
    const std::size_t sep = input.find("\n\n");
    if (sep != std::string_view::npos) {
        sent = parse_header(input.substr(0, sep));
        body = input.substr(sep + 2);
    }
    check_track_bulk(body, sent);
    check_failures(body, sent.size());
    return 0;
}
