// redact_secret(): the API key out of outside text, in every form it may be echoed in.
#include <gtest/gtest.h>

#include <string>

#include "core/iterable_json.hpp"
#include "core/redaction.hpp"

using ia::contains_secret;
using ia::redact_secret;

namespace {

const std::string kKey = "ak_Live/9f3B\"x";  // letters of both cases, '/', '"' and '_'

std::string percent_all(const std::string& s, bool upper) {
    static const char* lo = "0123456789abcdef";
    static const char* up = "0123456789ABCDEF";
    const char* h = upper ? up : lo;
    std::string out;
    for (unsigned char c : s) {
        out += '%';
        out += h[c >> 4];
        out += h[c & 15];
    }
    return out;
}

std::string json_u_all(const std::string& s) {
    std::string out;
    char buf[8];
    for (unsigned char c : s) {
        snprintf(buf, sizeof buf, "\\u%04X", c);
        out += buf;
    }
    return out;
}

void expect_redacted(const std::string& text, const std::string& key = kKey) {
    const std::string out = redact_secret(text, key);
    EXPECT_FALSE(contains_secret(out, key)) << text << " -> " << out;
    EXPECT_TRUE(contains_secret(text, key)) << text;
    EXPECT_NE(out.find("[redacted]"), std::string::npos) << out;
}

}  // namespace

TEST(RedactSecret, BareKeyInAnEcho) {
    const std::string body = "request {\"headers\": [\"" + kKey + "\"]} refused";
    EXPECT_EQ(redact_secret(body, kKey), "request {\"headers\": [\"[redacted]\"]} refused");
    EXPECT_EQ(redact_secret(kKey, kKey), "[redacted]");
    EXPECT_EQ(redact_secret(kKey + kKey, kKey), "[redacted][redacted]");
}

TEST(RedactSecret, AnyLetterCase) {
    expect_redacted("x AK_LIVE/9F3B\"X y");
    expect_redacted("ak_live/9f3b\"x");
    EXPECT_EQ(redact_secret("<aK_lIvE/9F3b\"X>", kKey), "<[redacted]>");
}

TEST(RedactSecret, PercentEncodedWhollyOrPartly) {
    EXPECT_EQ(redact_secret("k=" + percent_all(kKey, true) + "&x=1", kKey), "k=[redacted]&x=1");
    EXPECT_EQ(redact_secret("k=" + percent_all(kKey, false) + "&x=1", kKey), "k=[redacted]&x=1");
    expect_redacted("ak%5FLive%2F9f3B%22x");
    expect_redacted("ak%5fLive%2f9f3B%22x");
    expect_redacted("%61k_Live/9f3B\"x");
    expect_redacted("AK%5fLIVE%2F9F3b%22X");  // mixed case and encoding
    expect_redacted("ak%255FLive%252F9f3B%2522x");  // double-encoded
}

TEST(RedactSecret, JsonEscaped) {
    expect_redacted("{\"msg\":\"ak_Live\\/9f3B\\\"x\"}");  // escaped slash and quote
    expect_redacted("{\"msg\":\"" + json_u_all(kKey) + "\"}");
    expect_redacted("{\"msg\":\"\\u0061k_live\\u002f9F3B\\u0022X\"}");  // \u in lower-case hex, mixed case
    expect_redacted("\"ak_Live\\\\/9f3B\\\\\\\"x\"");  // JSON in a JSON string
    expect_redacted("ak_Live\\u002F9f3B\\u002522x");  // a JSON-escaped percent
    // The envelope's message is decoded before it is shown: the decoded text has no key either.
    const std::string body = redact_secret("{\"msg\":\"echo " + json_u_all(kKey) + "\",\"code\":\"BadParams\"}", kKey);
    const std::string shown = ia::describe_http_failure(400, body);
    EXPECT_EQ(shown, "HTTP 400 BadParams: echo [redacted]");
}

TEST(RedactSecret, KeepsEverythingElse) {
    EXPECT_EQ(redact_secret("nothing secret here", kKey), "nothing secret here");
    EXPECT_EQ(redact_secret("ak_Live/9f3B\"", kKey), "ak_Live/9f3B\"");  // a prefix is not the key
    EXPECT_EQ(redact_secret("%zz \\u00 \\q %4", kKey), "%zz \\u00 \\q %4");
    EXPECT_EQ(redact_secret("", kKey), "");
    EXPECT_EQ(redact_secret("x", ""), "x");
    EXPECT_FALSE(contains_secret("anything", ""));
}

TEST(RedactSecret, HeaderNamePatternsStillApply) {
    // Today's rule: the value after a header name, whatever the key (another account's, say).
    EXPECT_EQ(redact_secret("(Api-Key,0123456789abcdef), (Host,x)", kKey), "(Api-Key,[redacted]), (Host,x)");
    EXPECT_EQ(redact_secret("bad request api_key=SECRETKEY&x=1", ""), "bad request api_key=[redacted]&x=1");
    // The key found by value after a header name is replaced once, not "[redacted]]".
    EXPECT_EQ(redact_secret("(Api-Key," + kKey + ")", kKey), "(Api-Key,[redacted])");
    EXPECT_EQ(redact_secret("apiKeyIdentifier af83", ""), "apiKeyIdentifier af83");
}

TEST(RedactSecret, ShortAndAwkwardKeys) {
    // A one-letter key: every occurrence goes, and the marker chosen does not spell it again.
    const std::string e = redact_secret("Bad request", "e");
    EXPECT_FALSE(contains_secret(e, "e")) << e;
    EXPECT_EQ(e, "Bad r***qu***st");
    // The marker and its neighbours could spell the key: another marker is used.
    const std::string d = redact_secret("d]qq", "d]q");
    EXPECT_FALSE(contains_secret(d, "d]q")) << d;
    // A key holding the characters of every marker: the result is empty rather than leak it.
    const std::string all = "[redacted]***###~~~";
    EXPECT_FALSE(contains_secret(redact_secret("x" + all + "y" + all, all), all));
    const std::string pct = redact_secret("100%25", "%");
    EXPECT_FALSE(contains_secret(pct, "%")) << pct;
    const std::string bs = redact_secret("a\\\\b\\u005Cc", "\\");
    EXPECT_FALSE(contains_secret(bs, "\\")) << bs;
}

TEST(RedactSecret, LongTextsAreLinear) {
    // Many near-misses (the key's prefix repeated, and escapes everywhere) stay fast and exact.
    std::string text;
    for (int i = 0; i < 20000; ++i) text += "ak_Live/9f3B%5";
    text += kKey;
    const std::string out = redact_secret(text, kKey);
    EXPECT_FALSE(contains_secret(out, kKey));
    EXPECT_EQ(out.size(), text.size() - kKey.size() + 10);
}
