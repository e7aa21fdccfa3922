#include "core/iterable_json.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

using nlohmann::json;
using namespace ia;

namespace {

std::string js(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

Subscriber sub(std::string email, std::string user_id = "", std::string data = "") {
    return Subscriber{std::move(email), std::move(user_id), std::move(data)};
}

}  // namespace

// ---- append_json_string -------------------------------------------------------------------------

TEST(JsonString, PlainAndEscapes) {
    EXPECT_EQ(js(""), "\"\"");
    EXPECT_EQ(js("abc"), "\"abc\"");
    EXPECT_EQ(js("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(js("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
    EXPECT_EQ(js(std::string("\0\x01\x1f", 3)), "\"\\u0000\\u0001\\u001f\"");
    EXPECT_EQ(js("/ \x7F"), "\"/ \x7F\"");
}

TEST(JsonString, ValidUtf8Kept) {
    const std::string s = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF";
    EXPECT_EQ(js(s), "\"" + s + "\"");
}

TEST(JsonString, InvalidUtf8Replaced) {
    const std::string R = "\xEF\xBF\xBD";
    EXPECT_EQ(js("a\x80z"), "\"a" + R + "z\"");                // stray continuation
    EXPECT_EQ(js("a\xC3"), "\"a" + R + "\"");                  // truncated at end
    EXPECT_EQ(js("a\xC3z"), "\"a" + R + "z\"");                // truncated before ASCII
    EXPECT_EQ(js("\xC0\xAF"), "\"" + R + R + "\"");            // overlong: two invalid bytes
    EXPECT_EQ(js("\xE0\x80\xAF"), "\"" + R + R + R + "\"");    // overlong 3-byte
    EXPECT_EQ(js("\xED\xA0\x80"), "\"" + R + R + R + "\"");    // UTF-16 surrogate
    EXPECT_EQ(js("\xF4\x90\x80\x80"), "\"" + R + R + R + R + "\"");  // > U+10FFFF
    EXPECT_EQ(js("\xE2\x82"), "\"" + R + "\"");                // maximal subpart: one U+FFFD
    EXPECT_EQ(js("\xF0\x9F\x98z"), "\"" + R + "z\"");
    EXPECT_EQ(js("\xFF\xFE"), "\"" + R + R + "\"");
}

TEST(JsonString, RoundTripsThroughParser) {
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    const std::string out = js(all);
    const json parsed = json::parse(out);  // valid JSON, valid UTF-8
    ASSERT_TRUE(parsed.is_string());
    const std::string back = parsed.get<std::string>();
    EXPECT_EQ(back.substr(0, 128), all.substr(0, 128));
}

// ---- request bodies -----------------------------------------------------------------------------

TEST(SubscribeBody, ExactText) {
    std::vector<Subscriber> subs = {
        sub("a@example.com", "", "{\"plan\": \"pro\", \"n\": 1}"),
        sub("", "u-42"),
        sub("b@example.com", "u\"43"),
    };
    std::string out = "prefix:";
    append_subscribe_body(out, 12345, subs, false);
    EXPECT_EQ(out,
              "prefix:{\"listId\":12345,\"subscribers\":[{\"email\":\"a@example.com\",\"dataFields\":{\"plan\": \"pro\", "
              "\"n\": 1}},{\"userId\":\"u-42\"},{\"email\":\"b@example.com\",\"userId\":\"u\\\"43\"}],"
              "\"updateExistingUsersOnly\":false}");
}

TEST(SubscribeBody, UpdateExistingOnlyAndEmpty) {
    std::string out;
    append_subscribe_body(out, -1, {}, true);
    EXPECT_EQ(out, "{\"listId\":-1,\"subscribers\":[],\"updateExistingUsersOnly\":true}");
    std::string big;
    append_subscribe_body(big, INT64_MAX, {sub("", "u", "{}")}, false);
    EXPECT_EQ(big, "{\"listId\":9223372036854775807,\"subscribers\":[{\"userId\":\"u\",\"dataFields\":{}}],"
                   "\"updateExistingUsersOnly\":false}");
}

TEST(SubscribeBody, DataFieldsNullIsAbsent) {
    std::string out;
    append_subscribe_body(out, 1, {sub("a@b.co", "", "null")}, false);
    EXPECT_EQ(out, "{\"listId\":1,\"subscribers\":[{\"email\":\"a@b.co\"}],\"updateExistingUsersOnly\":false}");
}

TEST(BulkUpdateBody, ExactTextWithAndWithoutFlags) {
    std::vector<Subscriber> users = {
        sub("a@example.com", "u1", "{\"n\": 1, \"vip\": true, \"prefs\": {\"x\": [1, 2]}}"),
        sub("", "u2"),
        sub("c@example.com", "", "null"),
    };
    std::string out;
    append_bulk_update_body(out, users, false, false);
    EXPECT_EQ(out, "{\"users\":[{\"email\":\"a@example.com\",\"userId\":\"u1\",\"dataFields\":{\"n\": 1, "
                   "\"vip\": true, \"prefs\": {\"x\": [1, 2]}}},{\"userId\":\"u2\"},{\"email\":\"c@example.com\"}]}");
    std::string flagged;
    append_bulk_update_body(flagged, {sub("", "u2"), sub("d@example.com", "", "{}")}, true, true);
    EXPECT_EQ(flagged, "{\"users\":[{\"userId\":\"u2\",\"preferUserId\":true,\"mergeNestedObjects\":true},"
                       "{\"email\":\"d@example.com\",\"dataFields\":{},\"preferUserId\":true,"
                       "\"mergeNestedObjects\":true}]}");
    std::string merge_only;
    append_bulk_update_body(merge_only, {sub("", "u3")}, false, true);
    EXPECT_EQ(merge_only, "{\"users\":[{\"userId\":\"u3\",\"mergeNestedObjects\":true}]}");
    EXPECT_TRUE(json::parse(out).is_object() && json::parse(flagged).is_object());
}

TEST(SubscribeBody, ParsesAsJson) {
    std::vector<Subscriber> subs;
    for (int i = 0; i < 1000; ++i)
        subs.push_back(sub("user" + std::to_string(i) + "@example.com", "id\t" + std::to_string(i),
                           "{\"k\": [1, 2, {\"x\": null}], \"s\": \"\\u00e9\"}"));
    std::string out;
    append_subscribe_body(out, 7, subs, false);
    const json j = json::parse(out);
    EXPECT_EQ(j["listId"], 7);
    ASSERT_EQ(j["subscribers"].size(), 1000u);
    EXPECT_EQ(j["subscribers"][999]["userId"], "id\t999");
    EXPECT_EQ(j["subscribers"][3]["dataFields"]["k"][2]["x"], nullptr);
    EXPECT_EQ(j["updateExistingUsersOnly"], false);
}

TEST(UnsubscribeBody, ExactText) {
    std::vector<Subscriber> subs = {sub("a@example.com", "", "{\"ignored\":1}"), sub("", "u-42")};
    std::string out;
    append_unsubscribe_body(out, 12345, subs, 987, false);
    EXPECT_EQ(out, "{\"listId\":12345,\"subscribers\":[{\"email\":\"a@example.com\"},{\"userId\":\"u-42\"}],"
                   "\"campaignId\":987,\"channelUnsubscribe\":false}");
    out.clear();
    append_unsubscribe_body(out, 5, subs, std::nullopt, true);
    EXPECT_EQ(out, "{\"listId\":5,\"subscribers\":[{\"email\":\"a@example.com\"},{\"userId\":\"u-42\"}],"
                   "\"channelUnsubscribe\":true}");
    out.clear();
    append_unsubscribe_body(out, 5, subs, std::nullopt, false);
    EXPECT_NE(out.find("\"channelUnsubscribe\":false"), std::string::npos);
}

TEST(CreateListBody, Text) {
    EXPECT_EQ(build_create_list_body("VIP \"gold\"", std::nullopt), "{\"name\":\"VIP \\\"gold\\\"\"}");
    EXPECT_EQ(build_create_list_body("n", std::string_view("line1\nline2")),
              "{\"name\":\"n\",\"description\":\"line1\\nline2\"}");
}

// ---- bulk responses -----------------------------------------------------------------------------

TEST(BulkResponse, AllSucceeded) {
    std::vector<Subscriber> sent = {sub("a@x.com"), sub("", "u1")};
    auto r = parse_bulk_response(R"({"successCount":2,"failCount":0,"createdFields":[],"filteredOutFields":[]})",
                                 sent, BulkAction::Subscribe);
    EXPECT_EQ(r.success_count, 2);
    EXPECT_EQ(r.fail_count, 0);
    ASSERT_EQ(r.rows.size(), 2u);
    for (const auto& row : r.rows) {
        EXPECT_TRUE(row.succeeded);
        EXPECT_TRUE(row.error_code.empty());
        EXPECT_TRUE(row.error_message.empty());
    }
    EXPECT_EQ(r.unattributed_failures, 0);
}

TEST(BulkResponse, FullFailedUpdatesShape) {
    // RS fixture shape (reference 2.8).
    std::vector<Subscriber> sent = {
        sub("ok1@example.com"),           sub("INVALID2@Example.com"), sub("ok3@example.com", "ok_user3"),
        sub("forgotten2@example.com"),    sub("", "conflict_user2"),
    };
    const char* body =
        R"({"successCount":2,"failCount":3,"failedUpdates":{"invalidEmails":["invalid2@example.com"],"invalidUserIds":[],)"
        R"("notFoundEmails":[],"notFoundUserIds":[],"forgottenEmails":["forgotten2@example.com"],"forgottenUserIds":[],)"
        R"("conflictEmails":[],"conflictUserIds":["conflict_user2"],"invalidDataEmails":[],"invalidDataUserIds":[]}})";
    auto r = parse_bulk_response(body, sent, BulkAction::Subscribe);
    ASSERT_EQ(r.rows.size(), 5u);
    EXPECT_TRUE(r.rows[0].succeeded);
    EXPECT_FALSE(r.rows[1].succeeded);
    EXPECT_EQ(r.rows[1].error_code, "invalid_email");
    EXPECT_EQ(r.rows[1].error_message, "Iterable rejected the email: failedUpdates.invalidEmails");
    EXPECT_TRUE(r.rows[2].succeeded);
    EXPECT_EQ(r.rows[3].error_code, "forgotten");
    EXPECT_NE(r.rows[3].error_message.find("failedUpdates.forgottenEmails"), std::string::npos);
    EXPECT_EQ(r.rows[4].error_code, "conflict");
    EXPECT_NE(r.rows[4].error_message.find("failedUpdates.conflictUserIds"), std::string::npos);
    EXPECT_EQ(r.unattributed_failures, 0);
}

TEST(BulkResponse, DeprecatedTopLevelArrays) {
    std::vector<Subscriber> sent = {sub("sample@example.com"), sub("user@"), sub("", "bad id ")};
    auto r = parse_bulk_response(R"({"successCount":1,"failCount":2,"invalidEmails":["user@"],"invalidUserIds":["bad id "]})",
                                 sent, BulkAction::Subscribe);
    EXPECT_TRUE(r.rows[0].succeeded);
    EXPECT_EQ(r.rows[1].error_code, "invalid_email");
    EXPECT_EQ(r.rows[1].error_message, "Iterable rejected the email: invalidEmails");
    EXPECT_EQ(r.rows[2].error_code, "invalid_user_id");
    EXPECT_EQ(r.rows[2].error_message, "Iterable rejected the userId: invalidUserIds");
    EXPECT_EQ(r.unattributed_failures, 0);
}

TEST(BulkResponse, UserIdsAreCaseSensitiveEmailsAreNot) {
    std::vector<Subscriber> sent = {sub("", "User1"), sub("", "user1"), sub("mixed@case.com")};
    auto r = parse_bulk_response(
        R"({"successCount":1,"failCount":2,"failedUpdates":{"notFoundUserIds":["user1"],"notFoundEmails":["MIXED@CASE.COM"]}})",
        sent, BulkAction::Subscribe);
    EXPECT_TRUE(r.rows[0].succeeded);
    EXPECT_EQ(r.rows[1].error_code, "not_found");
    EXPECT_EQ(r.rows[1].error_message, "Iterable found no such user: failedUpdates.notFoundUserIds");
    EXPECT_EQ(r.rows[2].error_code, "not_found");
    EXPECT_EQ(r.rows[2].error_message, "Iterable found no such user: failedUpdates.notFoundEmails");
}

TEST(BulkResponse, UnsubscribeNotFoundIsSuccess) {
    std::vector<Subscriber> sent = {sub("notonlist@example.com"), sub("", "gone"), sub("f@x.com")};
    auto r = parse_bulk_response(
        R"({"successCount":0,"failCount":3,"failedUpdates":{"notFoundEmails":["notonlist@example.com"],)"
        R"("notFoundUserIds":["gone"],"forgottenEmails":["f@x.com"]}})",
        sent, BulkAction::Unsubscribe);
    EXPECT_TRUE(r.rows[0].succeeded);
    EXPECT_TRUE(r.rows[0].error_code.empty());
    EXPECT_TRUE(r.rows[0].error_message.empty());
    EXPECT_TRUE(r.rows[1].succeeded);
    EXPECT_FALSE(r.rows[2].succeeded);
    EXPECT_EQ(r.rows[2].error_code, "forgotten");
    EXPECT_EQ(r.unattributed_failures, 0);
}

TEST(BulkResponse, Precedence) {
    // One row in several arrays: forgotten > invalid_* > conflict > invalid_data > not_found.
    std::vector<Subscriber> sent = {
        sub("a@x.com", "ua"),  // forgotten (userId) + invalid (email)
        sub("b@x.com", "ub"),  // invalid userId + conflict email
        sub("c@x.com", "uc"),  // conflict userId + invalidData email
        sub("d@x.com", "ud"),  // invalidData userId + notFound email
        sub("e@x.com"),        // notFound only
    };
    const char* body =
        R"({"successCount":0,"failCount":5,"failedUpdates":{)"
        R"("forgottenUserIds":["ua"],"invalidEmails":["a@x.com"],)"
        R"("invalidUserIds":["ub"],"conflictEmails":["b@x.com"],)"
        R"("conflictUserIds":["uc"],"invalidDataEmails":["c@x.com"],)"
        R"("invalidDataUserIds":["ud"],"notFoundEmails":["d@x.com","e@x.com"]}})";
    auto r = parse_bulk_response(body, sent, BulkAction::Subscribe);
    EXPECT_EQ(r.rows[0].error_code, "forgotten");
    EXPECT_EQ(r.rows[1].error_code, "invalid_user_id");
    EXPECT_EQ(r.rows[2].error_code, "conflict");
    EXPECT_EQ(r.rows[3].error_code, "invalid_data");
    EXPECT_NE(r.rows[3].error_message.find("failedUpdates.invalidDataUserIds"), std::string::npos);
    EXPECT_EQ(r.rows[4].error_code, "not_found");
    EXPECT_EQ(r.unattributed_failures, 0);

    auto u = parse_bulk_response(body, sent, BulkAction::Unsubscribe);
    EXPECT_EQ(u.rows[3].error_code, "invalid_data");
    EXPECT_TRUE(u.rows[4].succeeded);
}

TEST(BulkResponse, UnattributedFailures) {
    std::vector<Subscriber> sent = {sub("a@x.com"), sub("b@x.com")};
    auto r = parse_bulk_response(R"({"successCount":0,"failCount":2,"failedUpdates":{"invalidEmails":["zzz@x.com"]}})",
                                 sent, BulkAction::Subscribe);
    EXPECT_TRUE(r.rows[0].succeeded);
    EXPECT_TRUE(r.rows[1].succeeded);
    EXPECT_EQ(r.unattributed_failures, 2);

    auto r2 = parse_bulk_response(R"({"successCount":1,"failCount":1})", sent, BulkAction::Subscribe);
    EXPECT_EQ(r2.unattributed_failures, 1);

    // Matching a row that Iterable did not count does not make the number negative.
    auto r3 = parse_bulk_response(R"({"successCount":2,"failCount":0,"failedUpdates":{"invalidEmails":["a@x.com"]}})",
                                  sent, BulkAction::Subscribe);
    EXPECT_EQ(r3.rows[0].error_code, "invalid_email");
    EXPECT_EQ(r3.unattributed_failures, 0);
}

TEST(BulkResponse, EmptyStringsAndNonStringsIgnored) {
    std::vector<Subscriber> sent = {sub("", "u1"), sub("a@x.com")};
    auto r = parse_bulk_response(
        R"({"successCount":2,"failCount":0,"failedUpdates":{"invalidEmails":["",null,5],"invalidUserIds":[""]},"noOpEmails":["a@x.com"]})",
        sent, BulkAction::Subscribe);
    EXPECT_TRUE(r.rows[0].succeeded);
    EXPECT_TRUE(r.rows[1].succeeded);
}

TEST(BulkResponse, DuplicateRowsBothMarked) {
    std::vector<Subscriber> sent = {sub("a@x.com"), sub("A@x.com")};
    auto r = parse_bulk_response(R"({"successCount":0,"failCount":2,"failedUpdates":{"invalidDataEmails":["a@x.com"]}})",
                                 sent, BulkAction::Subscribe);
    EXPECT_EQ(r.rows[0].error_code, "invalid_data");
    EXPECT_EQ(r.rows[1].error_code, "invalid_data");
    EXPECT_EQ(r.unattributed_failures, 0);
}

TEST(BulkResponse, MalformedBodiesThrow) {
    std::vector<Subscriber> sent = {sub("a@x.com")};
    for (const char* body : {"", "not json", "[]", "null", "{}", R"({"successCount":1})", R"({"failCount":0})",
                             R"({"successCount":"1","failCount":0})", R"({"successCount":1.5,"failCount":0})",
                             R"({"successCount":1,"failCount":-1})", R"({"successCount":1,"failCount":0)",
                             R"({"msg":"","code":"Success","params":null})"}) {
        EXPECT_THROW(parse_bulk_response(body, sent, BulkAction::Subscribe), ResponseFormatError) << body;
    }
    try {
        parse_bulk_response("<html>oops</html>", sent, BulkAction::Subscribe);
        FAIL();
    } catch (const ResponseFormatError& e) {
        EXPECT_NE(std::string(e.what()).find("not JSON"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("oops"), std::string::npos) << e.what();
    }
}

TEST(BulkResponse, LargeBatchIsLinear) {
    // 20,000 rows, all failed in several arrays: must be fast (hash lookups, not quadratic).
    const int n = 20000;
    std::vector<Subscriber> sent;
    sent.reserve(n);
    std::string body = R"({"successCount":0,"failCount":20000,"failedUpdates":{"invalidDataEmails":[)";
    std::string uids = R"(],"notFoundUserIds":[)";
    for (int i = 0; i < n; ++i) {
        sent.push_back(sub("User" + std::to_string(i) + "@Example.com", "id" + std::to_string(i)));
        if (i) {
            body += ',';
            uids += ',';
        }
        body += "\"user" + std::to_string(i) + "@example.com\"";
        uids += "\"id" + std::to_string(i) + "\"";
    }
    body += uids + "]}}";
    const auto t0 = std::chrono::steady_clock::now();
    auto r = parse_bulk_response(body, sent, BulkAction::Subscribe);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    for (int i = 0; i < n; ++i) ASSERT_EQ(r.rows[i].error_code, "invalid_data") << i;
    EXPECT_EQ(r.unattributed_failures, 0);
    EXPECT_LT(ms, 2000);
}

// ---- lists --------------------------------------------------------------------------------------

TEST(Lists, RealResponse) {
    auto lists = parse_lists_response(
        R"({"lists":[{"id":58508,"name":"new users","createdAt":1505330681211,"listType":"Dynamic"},)"
        R"({"id":56545,"name":"Gene's test list","createdAt":1504308852508,"listType":"Standard","description":"d"}]})");
    ASSERT_EQ(lists.size(), 2u);
    EXPECT_EQ(lists[0].id, 58508);
    EXPECT_EQ(lists[0].name, "new users");
    EXPECT_EQ(lists[0].created_at_ms, 1505330681211);
    EXPECT_EQ(lists[0].list_type, "Dynamic");
    EXPECT_FALSE(lists[0].description.has_value());
    EXPECT_EQ(lists[1].description.value(), "d");
}

TEST(Lists, LenientOnOptionalMembers) {
    auto lists = parse_lists_response(
        R"({"lists":[{"id":1,"name":"a","description":null},{"id":2,"name":"b","createdAt":1.5e12,"listType":"Suppression","isGlobalSuppressionEnabled":true}]})");
    ASSERT_EQ(lists.size(), 2u);
    EXPECT_EQ(lists[0].list_type, "");
    EXPECT_EQ(lists[0].created_at_ms, 0);
    EXPECT_FALSE(lists[0].description);
    EXPECT_EQ(lists[1].created_at_ms, 1500000000000);
    EXPECT_TRUE(parse_lists_response(R"({"lists":[]})").empty());
}

TEST(Lists, MalformedThrow) {
    for (const char* body : {"", "{}", R"({"lists":{}})", R"({"lists":[1]})", R"({"lists":[{"name":"a"}]})",
                             R"({"lists":[{"id":"1","name":"a"}]})", R"({"lists":[{"id":1}]})",
                             R"({"lists":[{"id":1,"name":"a","createdAt":"x"}]})",
                             R"({"lists":[{"id":1,"name":"a","description":3}]})",
                             R"({"lists":[{"id":18446744073709551615,"name":"a"}]})"}) {
        EXPECT_THROW(parse_lists_response(body), ResponseFormatError) << body;
    }
}

TEST(CreateList, Response) {
    EXPECT_EQ(parse_create_list_response(R"({"listId":61931})"), 61931);
    EXPECT_THROW(parse_create_list_response(R"({"msg":"x","code":"BadParams"})"), ResponseFormatError);
    EXPECT_THROW(parse_create_list_response(R"({"listId":"61931"})"), ResponseFormatError);
    EXPECT_THROW(parse_create_list_response("ok"), ResponseFormatError);
}

// ---- errors -------------------------------------------------------------------------------------

TEST(ErrorEnvelope, Parse) {
    auto e = parse_error_envelope(
        R"({"msg":"Invalid API key","code":"BadApiKey","params":{"ip":"1.2.3.4","endpoint":"/api/lists"}})");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, "BadApiKey");
    EXPECT_EQ(e->msg, "Invalid API key");
    auto m = parse_error_envelope(R"({"msg":"123 error.lists.invalidListId abc"})");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->code, "");
    EXPECT_EQ(m->msg, "123 error.lists.invalidListId abc");
    EXPECT_FALSE(parse_error_envelope("Rate limit exceeded. Please try again later."));
    EXPECT_FALSE(parse_error_envelope(""));
    EXPECT_FALSE(parse_error_envelope("{\"successCount\":1}"));
    EXPECT_FALSE(parse_error_envelope("{broken"));
    EXPECT_FALSE(parse_error_envelope("[\"msg\"]"));
}

TEST(DescribeHttpFailure, Examples) {
    EXPECT_EQ(describe_http_failure(401, R"({"msg":"Invalid API key","code":"BadApiKey","params":{"ip":"x"}})"),
              "HTTP 401 BadApiKey: Invalid API key");
    EXPECT_EQ(describe_http_failure(429, "Rate limit exceeded. Please try again later."),
              "HTTP 429: Rate limit exceeded. Please try again later.");
    EXPECT_EQ(describe_http_failure(401, R"({"msg":"Invalid API key","code":"Success","params":null})"),
              "HTTP 401: Invalid API key");
    EXPECT_EQ(describe_http_failure(400, R"({"code":"BadParams"})"), "HTTP 400 BadParams");
    EXPECT_EQ(describe_http_failure(503, ""), "HTTP 503");
    EXPECT_EQ(describe_http_failure(500, "  line1\r\n\tline2\x01\x7F  "), "HTTP 500: line1 line2");
    EXPECT_EQ(describe_http_failure(404, "<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
                                         "<body><h1>Not Found</h1></body></html>"),
              "HTTP 404: 404 Not Found Not Found");
}

TEST(DescribeHttpFailure, TruncatesAndSanitizes) {
    const std::string body(1000, 'x');
    const std::string d = describe_http_failure(502, body);
    EXPECT_EQ(d, "HTTP 502: " + std::string(200, 'x') + "...");

    // Truncation never splits a UTF-8 character; invalid UTF-8 becomes U+FFFD.
    std::string euros;
    for (int i = 0; i < 100; ++i) euros += "\xE2\x82\xAC";
    const std::string e = describe_http_failure(500, euros);
    const std::string shown = e.substr(std::string("HTTP 500: ").size());
    EXPECT_EQ(shown.size(), 198u + 3u);  // 66 euros + "..."
    EXPECT_EQ(describe_http_failure(500, "a\xFF" "b"), "HTTP 500: a\xEF\xBF\xBD" "b");

    // Long envelope messages are truncated as well.
    const std::string env = R"({"code":"BadJsonBody","msg":")" + std::string(500, 'm') + "\"}";
    EXPECT_EQ(describe_http_failure(400, env), "HTTP 400 BadJsonBody: " + std::string(200, 'm') + "...");
}

TEST(DescribeHttpFailure, RedactsApiKeys) {
    const std::string d = describe_http_failure(
        400, R"j({"msg":"[/api/lists] body: {}, hdrs: ArrayBuffer((Api-Key,0123456789abcdef), (Host,x))","code":"BadJsonBody"})j");
    EXPECT_EQ(d.find("0123456789abcdef"), std::string::npos) << d;
    EXPECT_NE(d.find("[redacted]"), std::string::npos) << d;
    EXPECT_NE(d.find("(Host,x)"), std::string::npos) << d;

    const std::string q = describe_http_failure(400, "bad request api_key=SECRETKEY&x=1");
    EXPECT_EQ(q, "HTTP 400: bad request api_key=[redacted]&x=1");

    // apiKeyIdentifier is not the key and is kept.
    const std::string r = describe_http_failure(
        401, R"({"msg":"Disabled API key or insufficient privileges","code":"BadApiKey","params":{"apiKeyIdentifier":"af831922"}})");
    EXPECT_EQ(r, "HTTP 401 BadApiKey: Disabled API key or insufficient privileges");
}

// Two rows keyed by userId share an email: a conflict listed under the email and under one userId
// belongs to that row only (the other was applied).
TEST(BulkResponse, SharedEmailConflictGoesToTheRowWhoseUserIdIsListed) {
    std::vector<Subscriber> sent = {sub("x@y.com", "u1"), sub("X@y.com", "u2")};
    auto r = parse_bulk_response(
        R"({"successCount":1,"failCount":1,"failedUpdates":{"conflictEmails":["x@y.com"],"conflictUserIds":["u2"]}})",
        sent, BulkAction::Subscribe);
    EXPECT_TRUE(r.rows[0].succeeded);
    EXPECT_FALSE(r.rows[1].succeeded);
    EXPECT_EQ(r.rows[1].error_code, "conflict");
    EXPECT_EQ(r.unattributed_failures, 0);
}

// When Iterable names only the shared email, the rows cannot be told apart: both fail (and are
// retried), rather than one being taken as acknowledged by mistake.
TEST(BulkResponse, SharedEmailConflictWithoutUserIdFailsEverySharer) {
    std::vector<Subscriber> sent = {sub("x@y.com", "u1"), sub("x@y.com", "u2"), sub("z@y.com", "u3")};
    auto r = parse_bulk_response(R"({"successCount":2,"failCount":1,"failedUpdates":{"conflictEmails":["x@y.com"]}})",
                                 sent, BulkAction::Subscribe);
    EXPECT_EQ(r.rows[0].error_code, "conflict");
    EXPECT_EQ(r.rows[1].error_code, "conflict");
    EXPECT_TRUE(r.rows[2].succeeded);
}

// An invalid email is invalid for every row that carries it.
TEST(BulkResponse, SharedInvalidEmailFailsEverySharer) {
    std::vector<Subscriber> sent = {sub("bad@", "u1"), sub("bad@", "u2")};
    auto r = parse_bulk_response(
        R"({"successCount":0,"failCount":2,"failedUpdates":{"invalidEmails":["bad@"],"notFoundUserIds":["u2"]}})",
        sent, BulkAction::Subscribe);
    EXPECT_EQ(r.rows[0].error_code, "invalid_email");
    EXPECT_EQ(r.rows[1].error_code, "invalid_email");
}
