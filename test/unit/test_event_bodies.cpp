#include "core/event_bodies.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>

#include "core/sha256.hpp"

using nlohmann::json;
using namespace ia;

namespace {

EventBuildOptions opts(EventKind kind, std::string project_type = "hybrid", int64_t sync_id = 7) {
    EventBuildOptions o;
    o.kind = kind;
    o.project_type = std::move(project_type);
    o.sync_id = sync_id;
    return o;
}

json body_of(const BuiltEvent& b) {
    EXPECT_TRUE(b.ok()) << b.error_code << ": " << b.error_message;
    return json::parse(b.json);
}

const std::optional<std::string> kCursor = std::string("42");

}  // namespace

// ---- SHA-256 ------------------------------------------------------------------------------------

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalEqualsOneShot) {
    const std::string text(200, 'x');
    for (std::size_t split : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 128u, 199u}) {
        Sha256 h;
        h.update(std::string_view(text).substr(0, split));
        h.update(std::string_view(text).substr(split));
        const auto d = h.finish();
        std::string hex;
        for (uint8_t b : d) {
            static const char* digits = "0123456789abcdef";
            hex += digits[b >> 4];
            hex += digits[b & 15];
        }
        EXPECT_EQ(hex, sha256_hex(text)) << split;
    }
}

// ---- kinds --------------------------------------------------------------------------------------

TEST(EventKinds, NamesActionsAndFields) {
    for (const char* name : {"track", "purchase", "cart", "device_token", "browser_token", "email_change"}) {
        auto kind = parse_event_kind(name);
        ASSERT_TRUE(kind) << name;
        EXPECT_EQ(event_kind_name(*kind), name);
    }
    EXPECT_FALSE(parse_event_kind("Track"));
    EXPECT_FALSE(parse_event_kind("page"));
    EXPECT_EQ(event_kind_action(EventKind::Purchase), "track_purchase");
    EXPECT_EQ(event_kind_action(EventKind::Cart), "update_cart");
    EXPECT_EQ(event_kind_action(EventKind::DeviceToken), "register_device_token");
    EXPECT_EQ(event_kind_action(EventKind::BrowserToken), "register_browser_token");
    EXPECT_EQ(event_kind_action(EventKind::EmailChange), "update_email");
    EXPECT_TRUE(event_kind_has_id(EventKind::Track));
    EXPECT_TRUE(event_kind_has_id(EventKind::Purchase));
    EXPECT_FALSE(event_kind_has_id(EventKind::Cart));
    EXPECT_EQ(event_kind_fields(EventKind::Track).size(), 8u);
    EXPECT_EQ(event_kind_required_fields(EventKind::Purchase),
              (std::vector<std::string_view>{"items", "total"}));
    EXPECT_EQ(event_kind_required_fields(EventKind::DeviceToken),
              (std::vector<std::string_view>{"token", "platform"}));
}

// ---- createdAt ----------------------------------------------------------------------------------

TEST(CreatedAt, EpochSeconds) {
    EXPECT_EQ(created_at_seconds("1700000000"), 1700000000);
    EXPECT_EQ(created_at_seconds(" 1700000000 "), 1700000000);
    EXPECT_EQ(created_at_seconds("0"), 0);
    EXPECT_EQ(created_at_seconds("1700000000.999"), 1700000000);
    EXPECT_EQ(created_at_seconds("-5"), -5);
    EXPECT_EQ(created_at_seconds("-5.5"), -6);  // toward minus infinity
    EXPECT_EQ(created_at_seconds("99999999999"), 99999999999);
    std::string error;
    EXPECT_FALSE(created_at_seconds("1700000000000", &error));  // milliseconds
    EXPECT_NE(error.find("milliseconds"), std::string::npos);
    EXPECT_FALSE(created_at_seconds("1.7e9"));
    EXPECT_FALSE(created_at_seconds("12a"));
    EXPECT_FALSE(created_at_seconds(""));
    EXPECT_FALSE(created_at_seconds("."));
}

TEST(CreatedAt, TimestampWithOffset) {
    EXPECT_EQ(created_at_seconds("1970-01-01 00:00:00+00"), 0);
    EXPECT_EQ(created_at_seconds("2023-11-14 22:13:20+00"), 1700000000);
    EXPECT_EQ(created_at_seconds("2023-11-14 22:13:20.999999+00"), 1700000000);
    EXPECT_EQ(created_at_seconds("2023-11-15 03:43:20+05:30"), 1700000000);
    EXPECT_EQ(created_at_seconds("2023-11-14 18:43:05-03:30:15"), 1700000000);
    EXPECT_EQ(created_at_seconds("2023-11-14T22:13:20Z"), 1700000000);
    EXPECT_EQ(created_at_seconds("2023-11-15T03:43:20+0530"), 1700000000);
    EXPECT_EQ(created_at_seconds("2023-11-14 22:13+00"), 1700000000 - 20);
    EXPECT_EQ(created_at_seconds("1969-12-31 23:59:59+00"), -1);
    EXPECT_EQ(created_at_seconds("2024-02-29 00:00:00+00"), 1709164800);
    EXPECT_EQ(created_at_seconds("10000-01-01 00:00:00+00"), 253402300800);
    std::string error;
    EXPECT_FALSE(created_at_seconds("2023-11-14 22:13:20", &error));
    EXPECT_NE(error.find("offset"), std::string::npos);
    EXPECT_FALSE(created_at_seconds("2023-02-29 00:00:00+00"));
    EXPECT_FALSE(created_at_seconds("2023-13-01 00:00:00+00"));
    EXPECT_FALSE(created_at_seconds("2023-11-14 24:00:00+00"));
    EXPECT_FALSE(created_at_seconds("2023-11-14 22:13:20+00 BC"));
    EXPECT_FALSE(created_at_seconds("infinity"));
    EXPECT_FALSE(created_at_seconds("2023-11-14"));
    EXPECT_FALSE(created_at_seconds("2023-11-14 22:13:20+00junk"));
}

// ---- ids ----------------------------------------------------------------------------------------

TEST(EventIds, DerivedIsStableValidAndDistinct) {
    const std::string a = derive_event_id(7, "42");
    EXPECT_EQ(a, derive_event_id(7, "42"));
    EXPECT_EQ(a.rfind("ia-7-", 0), 0u);
    EXPECT_EQ(a.size(), 5u + 32u);
    EXPECT_EQ(event_id_problem(a), "");
    EXPECT_NE(a, derive_event_id(8, "42"));
    EXPECT_NE(a, derive_event_id(7, "43"));
    EXPECT_NE(derive_event_id(7, "4", "2"), derive_event_id(7, "42", ""));  // length-prefixed
    EXPECT_NE(derive_event_id(7, "42", "a"), derive_event_id(7, "42", "b"));
    EXPECT_LE(derive_event_id(INT64_MIN, "x").size(), 57u);
    EXPECT_EQ(event_id_problem(derive_event_id(-3, "x")), "");
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) seen.insert(derive_event_id(1, std::to_string(i)));
    EXPECT_EQ(seen.size(), 20000u);
}

TEST(EventIds, MappedIdValidation) {
    EXPECT_EQ(event_id_problem("abc-DEF-123"), "");
    EXPECT_EQ(event_id_problem(std::string(512, 'a')), "");
    EXPECT_NE(event_id_problem(std::string(513, 'a')), "");
    EXPECT_NE(event_id_problem(""), "");
    for (const char* bad : {"a b", "a_b", "a.b", "caf\xC3\xA9", "a/b", "a\n"}) EXPECT_NE(event_id_problem(bad), "") << bad;
}

// ---- items and platform -------------------------------------------------------------------------

TEST(Items, ValidAndNormalized) {
    auto items = normalize_items(
        R"([{"id":"1","name":"A","price":9.5,"quantity":2.0,"sku":"S","categories":["x","y"],"dataFields":{"k":1},"url":null}])");
    ASSERT_TRUE(items);
    EXPECT_EQ(json::parse(*items),
              json::parse(R"([{"id":"1","name":"A","price":9.5,"quantity":2,"sku":"S","categories":["x","y"],"dataFields":{"k":1}}])"));
    EXPECT_TRUE(normalize_items("[]"));
    EXPECT_TRUE(normalize_items(R"([{"id":"1","name":"A","price":3,"quantity":1}])"));
}

TEST(Items, Refused) {
    std::string error;
    EXPECT_FALSE(normalize_items(R"({"id":"1"})", &error));
    EXPECT_NE(error.find("array"), std::string::npos);
    EXPECT_FALSE(normalize_items(R"([{"id":"1","name":"A","price":1}])", &error));
    EXPECT_NE(error.find("quantity"), std::string::npos);
    EXPECT_FALSE(normalize_items(R"([{"id":1,"name":"A","price":1,"quantity":1}])", &error));
    EXPECT_EQ(error, "items[0].id must be a string");
    EXPECT_FALSE(normalize_items(R"([{"id":"1","name":"A","price":"1","quantity":1}])"));
    EXPECT_FALSE(normalize_items(R"([{"id":"1","name":"A","price":1,"quantity":1.5}])"));
    EXPECT_FALSE(normalize_items(R"([{"id":"1","name":"A","price":1,"quantity":1,"categories":["a",2]}])"));
    EXPECT_FALSE(normalize_items(R"([{"id":"1","name":"A","price":1,"quantity":1,"brand":"x"}])", &error));
    EXPECT_NE(error.find("'brand'"), std::string::npos);
    EXPECT_FALSE(normalize_items(R"([{"id":null,"name":"A","price":1,"quantity":1}])"));
    EXPECT_FALSE(normalize_items(R"([3])"));
    EXPECT_FALSE(normalize_items("not json"));
}

TEST(Platform, OnlyIterablesValues) {
    EXPECT_TRUE(is_valid_platform("APNS"));
    EXPECT_TRUE(is_valid_platform("APNS_SANDBOX"));
    EXPECT_TRUE(is_valid_platform("GCM"));
    for (const char* bad : {"FCM", "apns", "gcm", "", "APNS "}) EXPECT_FALSE(is_valid_platform(bad)) << bad;
}

// ---- track --------------------------------------------------------------------------------------

TEST(TrackBody, AllFieldsInIterablesNames) {
    EventValues v;
    v.event_name = "Order Viewed";
    v.email = " Ann@Example.COM ";
    v.user_id = "u-1";
    v.id = "evt-9";
    v.created_at = "2023-11-14 22:13:20+00";
    v.data_fields = R"({"plan":"pro","n":12345678901234567890})";
    v.campaign_id = "12";
    v.template_id = "34";
    const BuiltEvent b = build_event(opts(EventKind::Track), v, kCursor);
    ASSERT_TRUE(b.ok()) << b.error_message;
    EXPECT_EQ(b.path, "/api/events/trackBulk");
    EXPECT_EQ(b.json,
              R"({"eventName":"Order Viewed","email":"ann@example.com","userId":"u-1","id":"evt-9",)"
              R"("createdAt":1700000000,"dataFields":{"plan":"pro","n":12345678901234567890},"campaignId":12,"templateId":34})");
    EXPECT_EQ(b.record_key, "evt-9");
    EXPECT_EQ(b.email, "ann@example.com");
    EXPECT_EQ(b.event_name, "Order Viewed");
}

TEST(TrackBody, DerivedIdFixedNameAndDataFieldColumns) {
    EventValues v;
    v.user_id = "u1";
    v.data_fields = R"({"a":1,"b":2})";
    v.extra_data_fields = {{"b", std::string("\"two\"")}, {"c", std::nullopt}};
    auto o = opts(EventKind::Track, "user_id");
    o.event_name = "Loaded a Page";
    const BuiltEvent b = build_event(o, v, std::string("2024-01-01 00:00:00+00"), "row-3");
    const json j = body_of(b);
    EXPECT_EQ(j["eventName"], "Loaded a Page");
    EXPECT_EQ(j["id"], derive_event_id(7, "2024-01-01 00:00:00+00", "row-3"));
    EXPECT_EQ(b.record_key, j["id"]);
    EXPECT_EQ(j["dataFields"], json::parse(R"({"a":1,"b":"two","c":null})"));
    EXPECT_FALSE(j.contains("createdAt"));
    EXPECT_FALSE(j.contains("email"));
}

TEST(TrackBody, Refusals) {
    EventValues v;
    v.email = "a@example.com";
    auto b = build_event(opts(EventKind::Track), v, kCursor);
    EXPECT_EQ(b.error_code, "invalid_field");
    EXPECT_NE(b.error_message.find("eventName"), std::string::npos);
    EXPECT_TRUE(b.json.empty());
    v.event_name = "";
    EXPECT_EQ(build_event(opts(EventKind::Track), v, kCursor).error_code, "invalid_field");
    v.event_name = "e";
    EXPECT_EQ(build_event(opts(EventKind::Track), v, std::nullopt).error_code, "invalid_field");
    v.id = "bad id";
    b = build_event(opts(EventKind::Track), v, kCursor);
    EXPECT_EQ(b.error_code, "invalid_field");
    EXPECT_NE(b.error_message.find("letters, digits and hyphens"), std::string::npos);
    v.id.reset();
    v.created_at = "yesterday";
    EXPECT_EQ(build_event(opts(EventKind::Track), v, kCursor).error_code, "invalid_field");
    v.created_at.reset();
    v.data_fields = "[1,2]";
    EXPECT_EQ(build_event(opts(EventKind::Track), v, kCursor).error_code, "invalid_field");
    v.data_fields = "null";  // jsonb null: no dataFields
    EXPECT_TRUE(build_event(opts(EventKind::Track), v, kCursor).ok());
    v.campaign_id = "1.5";
    EXPECT_EQ(build_event(opts(EventKind::Track), v, kCursor).error_code, "invalid_field");
}

TEST(Identity, PerProjectType) {
    EventValues v;
    v.event_name = "e";
    // email project: only the email is sent
    v.email = "A@x.com";
    v.user_id = "u1";
    auto b = build_event(opts(EventKind::Track, "email"), v, kCursor);
    EXPECT_EQ(body_of(b).count("userId"), 0u);
    EXPECT_EQ(b.email, "a@x.com");
    v.email = "bad@";
    EXPECT_EQ(build_event(opts(EventKind::Track, "email"), v, kCursor).error_code, "invalid_email");
    v.email.reset();
    EXPECT_EQ(build_event(opts(EventKind::Track, "email"), v, kCursor).error_code, "missing_identifier");
    // user_id project: only the userId
    v.email = "a@x.com";
    b = build_event(opts(EventKind::Track, "user_id"), v, kCursor);
    EXPECT_EQ(body_of(b).count("email"), 0u);
    v.user_id = " u1";
    EXPECT_EQ(build_event(opts(EventKind::Track, "user_id"), v, kCursor).error_code, "invalid_user_id");
    // hybrid: both valid ones; an invalid one next to a valid one is left out and noted
    v.user_id = "u1";
    b = build_event(opts(EventKind::Track, "hybrid"), v, kCursor);
    EXPECT_EQ(body_of(b)["email"], "a@x.com");
    EXPECT_EQ(body_of(b)["userId"], "u1");
    v.email = "bad@";
    b = build_event(opts(EventKind::Track, "hybrid"), v, kCursor);
    EXPECT_TRUE(b.ok());
    EXPECT_EQ(body_of(b).count("email"), 0u);
    EXPECT_NE(b.note.find("was not sent"), std::string::npos);
    v.user_id = std::string(53, 'x');
    EXPECT_EQ(build_event(opts(EventKind::Track, "hybrid"), v, kCursor).error_code, "invalid_user_id");
    v.user_id.reset();
    v.email = "  ";
    EXPECT_EQ(build_event(opts(EventKind::Track, "hybrid"), v, kCursor).error_code, "missing_identifier");
}

// ---- purchase and cart --------------------------------------------------------------------------

TEST(PurchaseBody, Fields) {
    EventValues v;
    v.email = "b@x.com";
    v.items = R"([{"id":"sku-1","name":"Hat","price":19.99,"quantity":1}])";
    v.total = "19.99";
    v.id = "order-1";
    v.created_at = "1700000000";
    v.data_fields = R"({"coupon":"X"})";
    v.campaign_id = "5";
    const BuiltEvent b = build_event(opts(EventKind::Purchase), v, kCursor);
    ASSERT_TRUE(b.ok()) << b.error_message;
    EXPECT_EQ(b.path, "/api/commerce/trackPurchase");
    EXPECT_EQ(b.json,
              R"({"id":"order-1","user":{"email":"b@x.com"},"items":[{"id":"sku-1","name":"Hat","price":19.99,"quantity":1}],)"
              R"("total":19.99,"createdAt":1700000000,"dataFields":{"coupon":"X"},"campaignId":5})");
    EXPECT_EQ(b.record_key, "order-1");
}

TEST(PurchaseBody, Refusals) {
    EventValues v;
    v.email = "b@x.com";
    v.total = "1";
    EXPECT_EQ(build_event(opts(EventKind::Purchase), v, kCursor).error_code, "invalid_field");  // no items
    v.items = R"([{"id":"1","name":"A","price":1}])";
    EXPECT_EQ(build_event(opts(EventKind::Purchase), v, kCursor).error_code, "invalid_field");
    v.items = "[]";
    v.total.reset();
    EXPECT_EQ(build_event(opts(EventKind::Purchase), v, kCursor).error_code, "invalid_field");
    v.total = "NaN";
    EXPECT_EQ(build_event(opts(EventKind::Purchase), v, kCursor).error_code, "invalid_field");
    v.total = "10";
    v.campaign_id = "3000000000";  // trackPurchase's campaignId is 32-bit
    EXPECT_EQ(build_event(opts(EventKind::Purchase), v, kCursor).error_code, "invalid_field");
    v.campaign_id.reset();
    const BuiltEvent b = build_event(opts(EventKind::Purchase), v, kCursor);
    EXPECT_EQ(body_of(b)["id"], derive_event_id(7, "42"));
}

TEST(CartBody, UserAndItems) {
    EventValues v;
    v.user_id = "u1";
    v.items = R"([{"id":"1","name":"A","price":1,"quantity":3}])";
    const BuiltEvent b = build_event(opts(EventKind::Cart), v, kCursor);
    ASSERT_TRUE(b.ok()) << b.error_message;
    EXPECT_EQ(b.path, "/api/commerce/updateCart");
    EXPECT_EQ(b.json, R"({"user":{"userId":"u1"},"items":[{"id":"1","name":"A","price":1,"quantity":3}]})");
    EXPECT_EQ(b.record_key, "42");  // no id: the cursor value
    v.items = R"("x")";
    EXPECT_EQ(build_event(opts(EventKind::Cart), v, kCursor).error_code, "invalid_field");
}

// ---- tokens -------------------------------------------------------------------------------------

TEST(DeviceTokenBody, Fields) {
    EventValues v;
    v.email = "d@x.com";
    v.token = "abc123";
    v.platform = "APNS_SANDBOX";
    v.application_name = "my-app";
    v.data_fields = R"({"os":"17"})";
    const BuiltEvent b = build_event(opts(EventKind::DeviceToken), v, kCursor);
    ASSERT_TRUE(b.ok()) << b.error_message;
    EXPECT_EQ(b.path, "/api/users/registerDeviceToken");
    EXPECT_EQ(b.json,
              R"({"email":"d@x.com","device":{"token":"abc123","platform":"APNS_SANDBOX","applicationName":"my-app","dataFields":{"os":"17"}}})");
}

TEST(DeviceTokenBody, Refusals) {
    EventValues v;
    v.email = "d@x.com";
    v.token = "abc";
    v.platform = "FCM";
    v.application_name = "app";
    auto b = build_event(opts(EventKind::DeviceToken), v, kCursor);
    EXPECT_EQ(b.error_code, "invalid_field");
    EXPECT_NE(b.error_message.find("APNS, APNS_SANDBOX or GCM"), std::string::npos);
    v.platform = "GCM";
    v.token = "";
    EXPECT_EQ(build_event(opts(EventKind::DeviceToken), v, kCursor).error_code, "invalid_field");
    v.token = "abc";
    v.application_name.reset();
    EXPECT_EQ(build_event(opts(EventKind::DeviceToken), v, kCursor).error_code, "invalid_field");
}

TEST(BrowserTokenBody, Fields) {
    EventValues v;
    v.user_id = "u\"1";
    v.browser_token = "web-token";
    const BuiltEvent b = build_event(opts(EventKind::BrowserToken), v, kCursor);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b.path, "/api/users/registerBrowserToken");
    EXPECT_EQ(b.json, R"({"userId":"u\"1","browserToken":"web-token"})");
    v.browser_token.reset();
    EXPECT_EQ(build_event(opts(EventKind::BrowserToken), v, kCursor).error_code, "invalid_field");
}

// ---- email changes ------------------------------------------------------------------------------

TEST(EmailChangeBody, EmailProjectUsesUpdateEmail) {
    EventValues v;
    v.current_email = "Old@x.com";
    v.current_user_id = "u1";
    v.new_email = " New@X.com";
    BuiltEvent b = build_event(opts(EventKind::EmailChange, "email"), v, kCursor);
    ASSERT_TRUE(b.ok()) << b.error_message;
    EXPECT_EQ(b.path, "/api/users/updateEmail");
    EXPECT_EQ(b.json, R"({"currentEmail":"old@x.com","newEmail":"new@x.com"})");
    v.current_email.reset();
    b = build_event(opts(EventKind::EmailChange, "email"), v, kCursor);
    EXPECT_EQ(b.json, R"({"currentUserId":"u1","newEmail":"new@x.com"})");
    v.new_email = "nope";
    EXPECT_EQ(build_event(opts(EventKind::EmailChange, "email"), v, kCursor).error_code, "invalid_email");
    v.new_email.reset();
    EXPECT_EQ(build_event(opts(EventKind::EmailChange, "email"), v, kCursor).error_code, "invalid_field");
    v.new_email = "n@x.com";
    v.current_user_id.reset();
    EXPECT_EQ(build_event(opts(EventKind::EmailChange, "email"), v, kCursor).error_code, "missing_identifier");
}

TEST(EmailChangeBody, OtherProjectsUseUsersUpdate) {
    EventValues v;
    v.current_email = "old@x.com";
    v.current_user_id = "u1";
    v.new_email = "new@x.com";
    BuiltEvent b = build_event(opts(EventKind::EmailChange, "hybrid"), v, kCursor);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b.path, "/api/users/update");
    EXPECT_EQ(b.json, R"({"userId":"u1","dataFields":{"email":"new@x.com"}})");
    v.current_user_id.reset();
    b = build_event(opts(EventKind::EmailChange, "hybrid"), v, kCursor);
    EXPECT_EQ(b.json, R"({"email":"old@x.com","dataFields":{"email":"new@x.com"}})");
    b = build_event(opts(EventKind::EmailChange, "user_id"), v, kCursor);
    EXPECT_EQ(b.error_code, "missing_identifier");
    EXPECT_NE(b.error_message.find("currentUserId"), std::string::npos);
    v.current_user_id = "u1";
    b = build_event(opts(EventKind::EmailChange, "user_id"), v, kCursor);
    EXPECT_EQ(b.json, R"({"userId":"u1","dataFields":{"email":"new@x.com"}})");
}
