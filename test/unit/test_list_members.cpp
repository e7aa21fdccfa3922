#include "core/list_members.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace ia;

using Members = std::vector<std::string>;

TEST(ListMembers, RecordedAnswer) {
    // reference/iterable-api.md 2.4, a real answer (trailing newline).
    EXPECT_EQ(parse_list_members("user1@example.com\nuser2@example.com\nuser3@example.com\n"),
              (Members{"user1@example.com", "user2@example.com", "user3@example.com"}));
}

TEST(ListMembers, EmptyLists) {
    EXPECT_EQ(parse_list_members(""), Members{});
    EXPECT_EQ(parse_list_members("\n\n\n"), Members{});
    EXPECT_EQ(parse_list_members("\r\n"), Members{});
}

TEST(ListMembers, NoTrailingNewlineCrLfAndBlankLines) {
    EXPECT_EQ(parse_list_members("a@x.io\r\nu-42\n\nb@x.io"), (Members{"a@x.io", "u-42", "b@x.io"}));
}

TEST(ListMembers, UserIdsKeptVerbatim) {
    // userIds are case-sensitive and may hold spaces inside, and any printable ASCII.
    EXPECT_EQ(parse_list_members("User 7\n{a}\n[1,2\n<b>\n"), (Members{"User 7", "{a}", "[1,2", "<b>"}));
}

TEST(ListMembers, DuplicatesKept) {
    EXPECT_EQ(parse_list_members("a@x.io\na@x.io\n"), (Members{"a@x.io", "a@x.io"}));
}

TEST(ListMembers, JsonEnvelopeRefused) {
    EXPECT_THROW(parse_list_members("{\"msg\":\"Invalid email list id\",\"code\":\"BadParams\",\"params\":null}"),
                 ResponseFormatError);
    EXPECT_THROW(parse_list_members("  {\"lists\":[]}\n"), ResponseFormatError);
}

TEST(ListMembers, HtmlRefused) {
    EXPECT_THROW(parse_list_members("<!DOCTYPE html>\n<html><body>Action not found</body></html>\n"),
                 ResponseFormatError);
    EXPECT_THROW(parse_list_members("<HTML><body>bad gateway</body></HTML>"), ResponseFormatError);
}

TEST(ListMembers, NulRefused) {
    EXPECT_THROW(parse_list_members(std::string("a@x.io\n\0b\n", 10)), ResponseFormatError);
}

TEST(ListReadWindow, FiveThenWaitForTheOldest) {
    ListReadWindow w;
    w.clear();
    for (int i = 0; i < kListReadsPerWindow; i++)
        EXPECT_EQ(w.try_take(100.0 + i), 0.0) << i;
    // The sixth, 10 s after the first: wait until the first is a window old.
    EXPECT_DOUBLE_EQ(w.try_take(110.0), 50.0);
    EXPECT_DOUBLE_EQ(w.try_take(159.5), 0.5);
    EXPECT_EQ(w.try_take(160.0), 0.0);  // the first has left the window
    EXPECT_DOUBLE_EQ(w.try_take(160.5), 0.5);  // the second (101) leaves at 161
    EXPECT_EQ(w.try_take(161.0), 0.0);
}

TEST(ListReadWindow, RefusalWaitsAWholeWindow) {
    ListReadWindow w;
    w.clear();
    EXPECT_EQ(w.try_take(10.0), 0.0);
    w.refused(10.5);
    EXPECT_DOUBLE_EQ(w.try_take(11.0), 59.5);
    EXPECT_DOUBLE_EQ(w.try_take(70.0), 0.5);
    EXPECT_EQ(w.try_take(70.5), 0.0);
    // A later refusal never shortens an earlier one.
    w.refused(200.0);
    w.refused(150.0);
    EXPECT_DOUBLE_EQ(w.try_take(250.0), 10.0);
}
