// libFuzzer target: identifier validation (src/core/identifiers.hpp) and the JSON string writer
// (append_json_string and the request bodies built with it, src/core/iterable_json.hpp).
//
// Input: any bytes, taken as one raw identifier. Invariants checked:
//   * normalize_email: the result is trimmed, has no upper-case ASCII, equals the lower-cased trim
//     of the input, re-normalizes to itself, and is_valid_normalized_email agrees with it;
//   * is_valid_user_id agrees with a reference written here from the header's rule;
//   * append_json_string writes valid UTF-8 that nlohmann parses back to a string, equal to the
//     input when the input is valid UTF-8; the subscribe/unsubscribe/create-list bodies built from
//     the input parse back with the right members.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/identifiers.hpp"
#include "core/iterable_json.hpp"
#include "fuzz_check.hpp"

namespace {

using json = nlohmann::json;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string trim_lower(std::string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && is_space(s[b])) ++b;
    while (e > b && is_space(s[e - 1])) --e;
    std::string out(s.substr(b, e - b));
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool reference_user_id(std::string_view s) {
    if (s.empty() || s.size() > 52) return false;
    if (s.front() == ' ' || s.back() == ' ') return false;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c > 0x7E) return false;
    }
    return true;
}

void check_email(std::string_view raw) {
    const std::optional<std::string> n = ia::normalize_email(raw);
    const std::string tl = trim_lower(raw);
    FUZZ_CHECK(n.has_value() == ia::is_valid_normalized_email(tl),
               "normalize_email and is_valid_normalized_email disagree");
    if (!n) return;
    const std::string& e = *n;
    FUZZ_CHECK(e == tl, "the normalized email is not the lower-cased trimmed input");
    FUZZ_CHECK(!e.empty() && e.size() <= ia::kMaxEmailLength, "length %zu", e.size());
    FUZZ_CHECK(!is_space(e.front()) && !is_space(e.back()), "not trimmed");
    for (char c : e) {
        FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "upper-case letter in a normalized email");
        FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7F,
                   "non-printable or non-ASCII byte 0x%02x in a normalized email", static_cast<unsigned char>(c));
    }
    FUZZ_CHECK(ia::is_valid_normalized_email(e), "a normalized email is not valid");
    const std::optional<std::string> again = ia::normalize_email(e);
    FUZZ_CHECK(again && *again == e, "normalize_email is not idempotent");
    // Exactly one '@', with a non-empty local part and a domain with a dot.
    const std::size_t at = e.find('@');
    FUZZ_CHECK(at != std::string::npos && at > 0 && e.find('@', at + 1) == std::string::npos, "bad '@'");
    FUZZ_CHECK(e.find('.', at) != std::string::npos, "a domain without a dot");
}

void check_user_id(std::string_view raw) {
    FUZZ_CHECK(ia::is_valid_user_id(raw) == reference_user_id(raw), "is_valid_user_id disagrees with the rule");
}

// The text nlohmann reads back from append_json_string's output.
std::string json_round_trip(std::string_view s) {
    std::string out;
    ia::append_json_string(out, s);
    FUZZ_CHECK(out.size() >= 2 && out.front() == '"' && out.back() == '"', "not a quoted string");
    FUZZ_CHECK(fuzz::valid_utf8(out), "append_json_string wrote invalid UTF-8");
    for (char ch : out)
        FUZZ_CHECK(static_cast<unsigned char>(ch) >= 0x20, "raw control character in a JSON string");
    const json j = json::parse(out, nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j.is_string(), "append_json_string wrote invalid JSON");
    const std::string back = j.get<std::string>();
    FUZZ_CHECK(fuzz::valid_utf8(back), "parsed back to invalid UTF-8");
    if (fuzz::valid_utf8(s)) FUZZ_CHECK(back == s, "valid UTF-8 did not round-trip");
    return back;
}

void check_bodies(std::string_view raw, const std::string& back) {
    std::vector<ia::Subscriber> subs(2);
    subs[0].email = std::string(raw);
    subs[0].user_id = std::string(raw);
    subs[0].data_fields_json = R"({"plan":"pro"})";
    subs[1].user_id = "u-1";

    std::string body;
    ia::append_subscribe_body(body, 42, subs, true);
    json j = json::parse(body, nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j.is_object(), "subscribe body is not a JSON object");
    FUZZ_CHECK(j["listId"] == 42 && j["updateExistingUsersOnly"] == true, "subscribe body members");
    FUZZ_CHECK(j["subscribers"].size() == 2 && j["subscribers"][0]["dataFields"]["plan"] == "pro", "subscribers");
    if (!raw.empty())
        FUZZ_CHECK(j["subscribers"][0]["email"] == back && j["subscribers"][0]["userId"] == back, "identifiers");

    body.clear();
    ia::append_unsubscribe_body(body, -1, subs, INT64_MIN, false);
    j = json::parse(body, nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j.is_object(), "unsubscribe body is not a JSON object");
    FUZZ_CHECK(j["campaignId"] == INT64_MIN && j["channelUnsubscribe"] == false, "unsubscribe body members");
    FUZZ_CHECK(!j["subscribers"][0].contains("dataFields"), "dataFields in an unsubscribe body");

    j = json::parse(ia::build_create_list_body(raw, raw), nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j["name"] == back && j["description"] == back, "create-list body");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    check_email(raw);
    check_user_id(raw);
    const std::string back = json_round_trip(raw);
    check_bodies(raw, back);
    return 0;
}
