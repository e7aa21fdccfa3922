#include "core/identifiers.hpp"

#include <gtest/gtest.h>

#include <string>

using ia::is_valid_user_id;
using ia::normalize_email;

namespace {

void expect_valid(const std::string& raw, const std::string& normalized) {
    auto got = normalize_email(raw);
    ASSERT_TRUE(got.has_value()) << "expected valid: [" << raw << "]";
    EXPECT_EQ(*got, normalized) << "raw: [" << raw << "]";
}

void expect_invalid(const std::string& raw) {
    auto got = normalize_email(raw);
    EXPECT_FALSE(got.has_value()) << "expected invalid: [" << raw << "] got [" << got.value_or("") << "]";
}

}  // namespace

TEST(NormalizeEmail, ValidAddresses) {
    expect_valid("user@example.com", "user@example.com");
    expect_valid("user+tag@example.com", "user+tag@example.com");
    expect_valid("first.last@example.co.uk", "first.last@example.co.uk");
    expect_valid("a@mail.sub.example.org", "a@mail.sub.example.org");
    expect_valid("user123@123example.com", "user123@123example.com");
    expect_valid("a@b.co", "a@b.co");
    expect_valid("x@my-domain.io", "x@my-domain.io");
    expect_valid("o'brien@example.ie", "o'brien@example.ie");
    expect_valid("weird!#$%&*/=?^_`{|}~-@example.com", "weird!#$%&*/=?^_`{|}~-@example.com");
    expect_valid("user@xn--80akhbyknj4f.xn--p1ai", "user@xn--80akhbyknj4f.xn--p1ai");
    expect_valid("example@placeholder.email", "example@placeholder.email");
    expect_valid("1@2.ab", "1@2.ab");
}

TEST(NormalizeEmail, TrimsAndLowercases) {
    expect_valid("  Foo@Example.COM  ", "foo@example.com");
    expect_valid("\tBAR+X@EXAMPLE.com\r\n", "bar+x@example.com");
    expect_valid("\v\fa@b.cd ", "a@b.cd");
}

TEST(NormalizeEmail, InvalidAddresses) {
    expect_invalid("");
    expect_invalid("   ");
    expect_invalid("\t\n");
    expect_invalid("user @example.com");
    expect_invalid("user@ example.com");
    expect_invalid("us er@example.com");
    expect_invalid("user@exa mple.com");
    expect_invalid("user\t@example.com");
    expect_invalid("a@b");
    expect_invalid("a@@b.com");
    expect_invalid("a@b@c.com");
    expect_invalid("@x.com");
    expect_invalid("a@");
    expect_invalid("a@.com");
    expect_invalid("a@x..com");
    expect_invalid("a@x.com.");
    expect_invalid("a.@x.com");
    expect_invalid(".a@x.com");
    expect_invalid("a..b@x.com");
    expect_invalid("user");
    expect_invalid("user.example.com");
    expect_invalid("a@-x.com");
    expect_invalid("a@x-.com");
    expect_invalid("a@x.c");        // TLD too short
    expect_invalid("a@x.c1");       // TLD not letters
    expect_invalid("a@x.123");
    expect_invalid("a@x_y.com");
    expect_invalid("a@[127.0.0.1]");
    expect_invalid("\"a b\"@x.com");
    expect_invalid("a(b)@x.com");
    expect_invalid("a,b@x.com");
    expect_invalid("a:b@x.com");
    expect_invalid("a;b@x.com");
    expect_invalid("a<b>@x.com");
    expect_invalid("a\\b@x.com");
    expect_invalid("a[b]@x.com");
    expect_invalid("j\xC3\xBCrgen@example.com");   // unicode local part
    expect_invalid("user@b\xC3\xBC" "cher.de");       // unicode domain
    expect_invalid("user@example.com\xC2\xA0");    // NBSP is not ASCII whitespace
    expect_invalid(std::string("a\0b@x.com", 9));
    expect_invalid("a@x.com\x7F");
    expect_invalid("user@example.c\xC3\xB6m");
}

TEST(NormalizeEmail, Lengths) {
    const std::string local64(64, 'a');
    expect_valid(local64 + "@x.com", local64 + "@x.com");
    expect_invalid(std::string(65, 'a') + "@x.com");

    const std::string label63(63, 'b');
    expect_valid("a@" + label63 + ".com", "a@" + label63 + ".com");
    expect_invalid("a@" + std::string(64, 'b') + ".com");

    // Total length 254 is the limit: 64 + 1 + 189.
    std::string domain189 = std::string(63, 'c') + "." + std::string(63, 'd') + "." + std::string(57, 'e') + ".com";
    ASSERT_EQ(domain189.size(), 189u);
    expect_valid(local64 + "@" + domain189, local64 + "@" + domain189);
    std::string domain190 = std::string(63, 'c') + "." + std::string(63, 'd') + "." + std::string(58, 'e') + ".com";
    expect_invalid(local64 + "@" + domain190);
    // Surrounding whitespace does not count.
    expect_valid("  " + local64 + "@" + domain189 + "  ", local64 + "@" + domain189);
}

TEST(NormalizeEmail, ValidatedNormalizedFormDirectly) {
    EXPECT_TRUE(ia::is_valid_normalized_email("a@b.co"));
    EXPECT_FALSE(ia::is_valid_normalized_email("A@B.CO"));  // domain must be lowercase already
    EXPECT_FALSE(ia::is_valid_normalized_email(" a@b.co"));
}

TEST(UserId, Valid) {
    EXPECT_TRUE(is_valid_user_id("u-42"));
    EXPECT_TRUE(is_valid_user_id("x"));
    EXPECT_TRUE(is_valid_user_id("User 42"));  // internal space
    EXPECT_TRUE(is_valid_user_id("CaseSensitive_ID.1"));
    EXPECT_TRUE(is_valid_user_id("~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./"));
    EXPECT_TRUE(is_valid_user_id(std::string(52, 'z')));
    EXPECT_TRUE(is_valid_user_id("a@b.com"));
}

TEST(UserId, Invalid) {
    EXPECT_FALSE(is_valid_user_id(""));
    EXPECT_FALSE(is_valid_user_id(" "));
    EXPECT_FALSE(is_valid_user_id(" u1"));
    EXPECT_FALSE(is_valid_user_id("u1 "));
    EXPECT_FALSE(is_valid_user_id("u1\t"));
    EXPECT_FALSE(is_valid_user_id("u\n1"));
    EXPECT_FALSE(is_valid_user_id(std::string(53, 'z')));
    EXPECT_FALSE(is_valid_user_id("caf\xC3\xA9"));
    EXPECT_FALSE(is_valid_user_id("del\x7F"));
    EXPECT_FALSE(is_valid_user_id(std::string("a\0b", 3)));
}
