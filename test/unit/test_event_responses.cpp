#include "core/event_batches.hpp"
#include "core/event_responses.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using nlohmann::json;
using namespace ia;

namespace {

SentEvent ev(std::string email, std::string user_id = "", std::string name = "e") {
    return SentEvent{std::move(email), std::move(user_id), std::move(name)};
}

std::vector<std::string> codes(const TrackBulkResult& r) {
    std::vector<std::string> out;
    for (const auto& row : r.rows) out.push_back(row.succeeded ? "ok" : row.error_code);
    return out;
}

}  // namespace

// ---- trackBulk answer ---------------------------------------------------------------------------

TEST(TrackBulkResponse, SpecShape) {
    const std::vector<SentEvent> sent = {ev("ok@x.com"), ev("bad@"), ev("", "gone"), ev("", "nobody"),
                                         ev("f@x.com", "", "spam"), ev("Mixed@X.com")};
    const auto r = parse_track_bulk_response(
        R"({"successCount":1,"failCount":5,"invalidEmails":["bad@"],"invalidUserIds":[],
            "disallowedEventNames":["spam"],
            "failedUpdates":{"invalidEmails":["bad@"],"invalidUserIds":[],"notFoundEmails":["mixed@x.com"],
                             "notFoundUserIds":["nobody"],"forgottenEmails":[],"forgottenUserIds":["gone"]},
            "createdFields":[],"filteredOutFields":[]})",
        sent);
    EXPECT_EQ(r.success_count, 1);
    EXPECT_EQ(r.fail_count, 5);
    EXPECT_EQ(codes(r), (std::vector<std::string>{"ok", "invalid_email", "forgotten", "not_found",
                                                  "disallowed_event_name", "not_found"}));
    EXPECT_EQ(r.unattributed_failures, 0);
    EXPECT_EQ(r.rows[1].error_message, "Iterable refused the event: failedUpdates.invalidEmails");
    EXPECT_NE(r.rows[4].error_message.find("disallowedEventNames"), std::string::npos);
}

TEST(TrackBulkResponse, RecordedShapeWithoutFailedUpdates) {
    const auto r = parse_track_bulk_response(
        R"({"successCount":1,"failCount":2,"invalidEmails":["bad@"],"invalidUserIds":["x y "],"disallowedEventNames":[]})",
        {ev("user@example.com"), ev("bad@"), ev("", "x y ")});
    EXPECT_EQ(codes(r), (std::vector<std::string>{"ok", "invalid_email", "invalid_user_id"}));
    EXPECT_EQ(r.rows[1].error_message, "Iterable refused the event: invalidEmails");
}

TEST(TrackBulkResponse, PriorityAndSharedIdentifiers) {
    // forgotten before invalid before not found before disallowed; every event of a listed user fails
    const auto r = parse_track_bulk_response(
        R"({"successCount":0,"failCount":4,"disallowedEventNames":["e"],
            "failedUpdates":{"forgottenUserIds":["u1"],"notFoundEmails":["a@x.com"]}})",
        {ev("a@x.com", "u1"), ev("a@x.com"), ev("a@x.com", "u2"), ev("z@x.com")});
    EXPECT_EQ(codes(r), (std::vector<std::string>{"forgotten", "not_found", "not_found", "disallowed_event_name"}));
}

TEST(TrackBulkResponse, UnattributedFailures) {
    auto r = parse_track_bulk_response(R"({"successCount":1,"failCount":2})", {ev("a@x.com"), ev("b@x.com"), ev("c@x.com")});
    EXPECT_EQ(codes(r), (std::vector<std::string>{"ok", "ok", "ok"}));
    EXPECT_EQ(r.unattributed_failures, 2);
    r = parse_track_bulk_response(R"({"successCount":0,"failCount":1,"failedUpdates":{"invalidEmails":["zz@"]}})",
                                  {ev("a@x.com")});
    EXPECT_EQ(r.unattributed_failures, 1);
    // more rows matched than failCount: never negative
    r = parse_track_bulk_response(R"({"successCount":0,"failCount":0,"invalidEmails":["a@x.com"]})", {ev("a@x.com")});
    EXPECT_EQ(r.unattributed_failures, 0);
}

TEST(TrackBulkResponse, EmptyAndMalformed) {
    const auto r = parse_track_bulk_response(R"({"successCount":0,"failCount":0,"invalidEmails":[],"invalidUserIds":[],"disallowedEventNames":[]})", {});
    EXPECT_TRUE(r.rows.empty());
    for (const char* body : {"", "[]", "not json", R"({"failCount":0})", R"({"successCount":-1,"failCount":0})",
                             R"({"successCount":1.5,"failCount":0})", R"({"successCount":"1","failCount":0})",
                             "Rate limit exceeded. Please try again later."}) {
        EXPECT_THROW(parse_track_bulk_response(body, {ev("a@x.com")}), ResponseFormatError) << body;
    }
    // wrong types inside arrays are ignored
    const auto odd = parse_track_bulk_response(
        R"({"successCount":1,"failCount":0,"invalidEmails":[1,null,""],"failedUpdates":"x","disallowedEventNames":{}})",
        {ev("a@x.com")});
    EXPECT_EQ(codes(odd), (std::vector<std::string>{"ok"}));
}

TEST(TrackBulkResponse, MalformedMessageRedactsTheKey) {
    try {
        parse_track_bulk_response("<html>Api-Key: secret-123 bad</html>", {});
        FAIL();
    } catch (const ResponseFormatError& e) {
        EXPECT_EQ(std::string(e.what()).find("secret-123"), std::string::npos) << e.what();
    }
}

// ---- whole-request refusals ---------------------------------------------------------------------

TEST(TrackBulkFailure, Classification) {
    EXPECT_EQ(classify_track_bulk_failure(0, "", 3).action, BulkRefusal::Retry);
    EXPECT_EQ(classify_track_bulk_failure(429, "Rate limit exceeded. Please try again later.", 3).action,
              BulkRefusal::Retry);
    EXPECT_EQ(classify_track_bulk_failure(503, "{}", 3).action, BulkRefusal::Retry);
    EXPECT_EQ(classify_track_bulk_failure(401, R"({"msg":"Invalid API key","code":"BadApiKey"})", 3).action,
              BulkRefusal::Fatal);
    EXPECT_EQ(classify_track_bulk_failure(404, "<html>Action not found</html>", 3).action, BulkRefusal::Fatal);
    EXPECT_EQ(classify_track_bulk_failure(413, R"({"msg":"too big","code":"BatchTooLarge"})", 3).action,
              BulkRefusal::TooLarge);
    EXPECT_EQ(classify_track_bulk_failure(400, R"({"msg":"x","code":"BadParams"})", 3).action,
              BulkRefusal::SendSingly);
}

TEST(TrackBulkFailure, BadJsonBodyNamesTheRecords) {
    const auto f = classify_track_bulk_failure(
        400,
        R"({"msg":"[/api/events/trackBulk] Invalid JSON body. Request headers: api-key: sekret, host: x","code":"BadJsonBody",
            "params":{"obj.events[2].createdAt":[{"msg":["error.expected.jsnumber"],"args":[]}],
                      "obj.events[0].eventName":[{"msg":["error.expected.jsstring"],"args":[]}],
                      "obj.events[2].id":[],"obj.events[9].id":[],"obj.events[x]":[],"obj":[]}})",
        3);
    EXPECT_EQ(f.action, BulkRefusal::BadRecords);
    EXPECT_EQ(f.records, (std::vector<std::size_t>{0, 2}));
    EXPECT_EQ(f.message.find("sekret"), std::string::npos) << f.message;
    EXPECT_NE(f.message.find("[redacted]"), std::string::npos) << f.message;
    EXPECT_EQ(classify_track_bulk_failure(400, R"({"msg":"x","code":"BadJsonBody","params":null})", 3).action,
              BulkRefusal::SendSingly);
}

TEST(TrackBulkFailure, TypesMismatchAndSuspects) {
    const std::string body =
        R"({"msg":"Project 1: The request does not have the same data types","code":"RequestFieldsTypesMismatched",
            "params":{"validationErrors":{"amount":{"incomingTypes":["string"],"expectedType":"number",
                                                    "category":"event","offendingValue":"ten","_type":"UnexpectedType"}}}})";
    const auto f = classify_track_bulk_failure(400, body, 4);
    ASSERT_EQ(f.action, BulkRefusal::SplitTypes);
    ASSERT_EQ(f.mismatches.size(), 1u);
    EXPECT_EQ(f.mismatches[0].field, "amount");
    EXPECT_EQ(f.mismatches[0].expected_type, "number");
    EXPECT_EQ(f.mismatches[0].category, "event");
    EXPECT_EQ(f.mismatches[0].offending_value, "\"ten\"");
    EXPECT_EQ(mismatch_suspects(f.mismatches, {R"({"amount":3})", R"({"amount":"ten"})", "", R"({"other":"ten"})"}),
              (std::vector<std::size_t>{1}));
    // no offending value: by type; nested fields by dotted path
    const std::vector<FieldMismatch> by_type = {{"meta.x", "long", "event", ""}};
    EXPECT_EQ(mismatch_suspects(by_type, {R"({"meta":{"x":1}})", R"({"meta":{"x":"1"}})", R"({"meta":3})", "not json"}),
              (std::vector<std::size_t>{1}));
    EXPECT_TRUE(parse_fields_mismatch("nope").empty());
    EXPECT_TRUE(parse_fields_mismatch(R"({"params":{"validationErrors":[]}})").empty());
}

// ---- single-record answers ----------------------------------------------------------------------

TEST(SingleResponse, Classification) {
    struct Case {
        long status;
        const char* body;
        Disposition disposition;
        const char* code;
    };
    const Case cases[] = {
        {200, R"({"msg":"","code":"Success","params":null})", Disposition::Succeeded, ""},
        {400, R"({"msg":"Invalid email: x","code":"InvalidEmailAddressError"})", Disposition::Failed, "invalid_email"},
        {400, R"({"msg":"Invalid userId","code":"InvalidUserIdError"})", Disposition::Failed, "invalid_user_id"},
        {400, R"({"msg":"No user","code":"UnknownUserIdError"})", Disposition::Failed, "not_found"},
        {400, R"({"msg":"Cannot change user a to b: User does not exist","code":"BadParams"})", Disposition::Failed,
         "not_found"},
        {409, R"({"msg":"New email already exists","code":"EmailAlreadyExists"})", Disposition::Failed, "conflict"},
        {409, R"({"msg":"Contact is GDPR forgotten","code":"ForgottenUserError"})", Disposition::Failed, "forgotten"},
        {409, "", Disposition::Failed, "conflict"},
        {400, R"({"msg":"x","code":"RequestFieldsTypesMismatched"})", Disposition::Failed, "invalid_data"},
        {400, R"({"msg":"x","code":"BadJsonBody"})", Disposition::Failed, "invalid_field"},
        {413, R"({"msg":"x","code":"BatchTooLarge"})", Disposition::Failed, "too_large"},
        {400, R"({"msg":"max devices","code":"BadParams"})", Disposition::Failed, "http_error"},
        {429, "Rate limit exceeded. Please try again later.", Disposition::Retry, "rate_limited"},
        {500, R"({"msg":"Unable to register token","code":"GenericError"})", Disposition::Retry, "http_error"},
        {0, "", Disposition::Retry, "http_error"},
        {401, R"({"msg":"Invalid API key","code":"BadApiKey"})", Disposition::Fatal, "http_error"},
        {404, "<html/>", Disposition::Fatal, "http_error"},
    };
    for (const Case& c : cases) {
        const auto o = classify_single_response(EventKind::Purchase, c.status, c.body);
        EXPECT_EQ(o.disposition, c.disposition) << c.status << " " << c.body;
        EXPECT_EQ(o.error_code, c.code) << c.status << " " << c.body;
    }
}

TEST(SingleResponse, DisallowedTrackAndRedaction) {
    auto o = classify_single_response(EventKind::Track, 200,
                                      R"({"msg":"event spam is disallowed from tracking.","code":"Success"})");
    EXPECT_EQ(o.disposition, Disposition::Failed);
    EXPECT_EQ(o.error_code, "disallowed_event_name");
    o = classify_single_response(EventKind::Purchase, 200, R"({"msg":"event x is disallowed from tracking."})");
    EXPECT_EQ(o.disposition, Disposition::Succeeded);
    o = classify_single_response(EventKind::Cart, 400, R"({"msg":"bad; Api-Key: k-123","code":"BadJsonBody"})");
    EXPECT_EQ(o.error_message.find("k-123"), std::string::npos) << o.error_message;
}

TEST(SingleResponse, PermanentErrors) {
    for (const char* c : {"invalid_email", "invalid_user_id", "missing_identifier", "invalid_field", "invalid_data",
                          "too_large", "forgotten"})
        EXPECT_TRUE(is_permanent_error(c)) << c;
    for (const char* c : {"not_found", "conflict", "disallowed_event_name", "http_error", "rate_limited"})
        EXPECT_FALSE(is_permanent_error(c)) << c;
}

// ---- batching -----------------------------------------------------------------------------------

TEST(TrackBulkBatcher, ByCount) {
    TrackBulkBatcher b(2, 1000);
    EXPECT_EQ(b.add(R"({"eventName":"a"})"), TrackBulkBatcher::Add::Added);
    EXPECT_EQ(b.add(R"({"eventName":"b"})"), TrackBulkBatcher::Add::Added);
    EXPECT_EQ(b.add(R"({"eventName":"c"})"), TrackBulkBatcher::Add::Full);
    EXPECT_EQ(b.count(), 2u);
    const std::string body = b.take();
    EXPECT_EQ(body, R"({"events":[{"eventName":"a"},{"eventName":"b"}]})");
    EXPECT_EQ(json::parse(body)["events"].size(), 2u);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.add(R"({"eventName":"c"})"), TrackBulkBatcher::Add::Added);
    EXPECT_EQ(b.take(), R"({"events":[{"eventName":"c"}]})");
    EXPECT_EQ(b.take(), R"({"events":[]})");
}

TEST(TrackBulkBatcher, ByBytesAndTooLarge) {
    const std::string e(20, 'x');                                    // stands for a 20-byte element
    const std::size_t one = TrackBulkBatcher::single_body_bytes(e);  // {"events":[ (11) + 20 + ]} (2)
    EXPECT_EQ(one, 33u);
    TrackBulkBatcher b(100, 54);  // room for exactly two: 11 + 20 + 1 + 20 + 2
    EXPECT_EQ(b.add(e), TrackBulkBatcher::Add::Added);
    EXPECT_EQ(b.add(e), TrackBulkBatcher::Add::Added);
    EXPECT_EQ(b.body_bytes(), 54u);
    EXPECT_EQ(b.add(e), TrackBulkBatcher::Add::Full);
    EXPECT_EQ(b.take().size(), 54u);
    TrackBulkBatcher small(100, 32);
    EXPECT_EQ(small.add(e), TrackBulkBatcher::Add::TooLarge);  // 33 > 32: never sendable
    EXPECT_TRUE(small.empty());
    TrackBulkBatcher exact(100, 33);
    EXPECT_EQ(exact.add(e), TrackBulkBatcher::Add::Added);
    EXPECT_TRUE(body_fits(std::string(10, 'a'), 10));
    EXPECT_FALSE(body_fits(std::string(11, 'a'), 10));
}

TEST(TrackBulkBatcher, NeverOverTheCaps) {
    TrackBulkBatcher b(7, 300);
    std::size_t events = 0, bodies = 0;
    for (int i = 0; i < 500; ++i) {
        const std::string e = "{\"eventName\":\"" + std::string(static_cast<std::size_t>(i % 40), 'n') + "\"}";
        auto r = b.add(e);
        if (r == TrackBulkBatcher::Add::Full) {
            const std::string body = b.take();
            EXPECT_LE(body.size(), 300u);
            EXPECT_LE(json::parse(body)["events"].size(), 7u);
            events += json::parse(body)["events"].size();
            ++bodies;
            r = b.add(e);
        }
        ASSERT_EQ(r, TrackBulkBatcher::Add::Added);
    }
    events += json::parse(b.take())["events"].size();
    EXPECT_EQ(events, 500u);
    EXPECT_GT(bodies, 500u / 7u - 1u);
}
