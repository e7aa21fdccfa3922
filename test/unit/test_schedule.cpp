#include "core/schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <string>
#include <vector>

using ia::next_run_after;
using ia::parse_schedule;
using ia::Schedule;
using ia::ScheduleError;

namespace {

// Independent of the implementation: the C library's UTC conversion.
int64_t utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return static_cast<int64_t>(timegm(&tm));
}

int64_t next(const std::string& text, int64_t after) {
    const Schedule s = parse_schedule(text);
    auto n = next_run_after(s, after);
    EXPECT_TRUE(n.has_value()) << text;
    return n.value_or(-1);
}

const char* const kExamples =
    "accepted: 'manual', 'continuous', 'every 15 minutes', 'every 6 hours starting 02:30', or a cron expression such as "
    "'*/5 * * * *' (UTC)";

void expect_error(const std::string& text, const std::string& problem) {
    try {
        parse_schedule(text);
        ADD_FAILURE() << "accepted: [" << text << "]";
    } catch (const ScheduleError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(kExamples), std::string::npos) << msg;
        EXPECT_NE(msg.find(problem), std::string::npos) << "[" << problem << "] not in: " << msg;
        EXPECT_EQ(msg.rfind("invalid schedule \"", 0), 0u) << msg;
    }
}

}  // namespace

// ---- manual and intervals -----------------------------------------------------------------------

TEST(Schedule, Manual) {
    for (const char* t : {"manual", "MANUAL", "  Manual  "}) {
        Schedule s = parse_schedule(t);
        EXPECT_EQ(s.kind, Schedule::Kind::Manual);
        EXPECT_EQ(s.canonical, "manual");
        EXPECT_FALSE(next_run_after(s, 0).has_value());
    }
}

TEST(Schedule, Continuous) {
    for (const char* t : {"continuous", "CONTINUOUS", "  Continuous "}) {
        Schedule s = parse_schedule(t);
        EXPECT_EQ(s.kind, Schedule::Kind::Continuous);
        EXPECT_EQ(s.canonical, "continuous");
        EXPECT_FALSE(next_run_after(s, 0).has_value());  // polled by the scheduler, never due
    }
    expect_error("continuous 5", "a cron expression has five fields");
}

TEST(Schedule, IntervalParsingAndCanonical) {
    struct Case {
        const char* text;
        int64_t seconds;
        const char* canonical;
    } cases[] = {
        {"every 15 minutes", 900, "every 15 minutes"},
        {"  EVERY   5   Minutes ", 300, "every 5 minutes"},
        {"every 1 minute", 60, "every 1 minute"},
        {"every 1 minutes", 60, "every 1 minute"},
        {"every 1 hour", 3600, "every 1 hour"},
        {"every 24 hours", 86400, "every 24 hours"},
        {"every 90 minutes", 5400, "every 90 minutes"},
        {"every 6 hours starting 02:30", 21600, "every 6 hours starting 02:30"},
        {"every 6 Hours Starting 2:30", 21600, "every 6 hours starting 02:30"},
        {"every 015 minutes", 900, "every 15 minutes"},
    };
    for (const auto& c : cases) {
        Schedule s = parse_schedule(c.text);
        EXPECT_EQ(s.kind, Schedule::Kind::Interval) << c.text;
        EXPECT_EQ(s.interval_seconds, c.seconds) << c.text;
        EXPECT_EQ(s.canonical, c.canonical) << c.text;
        // Canonical text parses to the same schedule.
        Schedule again = parse_schedule(s.canonical);
        EXPECT_EQ(again.interval_seconds, s.interval_seconds);
        EXPECT_EQ(again.anchor_seconds, s.anchor_seconds);
        EXPECT_EQ(again.canonical, s.canonical);
    }
}

TEST(Schedule, IntervalNextRun) {
    const int64_t t = utc(2025, 3, 10, 12, 7, 13);
    EXPECT_EQ(next("every 15 minutes", t), utc(2025, 3, 10, 12, 15));
    EXPECT_EQ(next("every 15 minutes", utc(2025, 3, 10, 12, 15)), utc(2025, 3, 10, 12, 30));  // strictly after
    EXPECT_EQ(next("every 15 minutes", utc(2025, 3, 10, 23, 59, 59)), utc(2025, 3, 11, 0, 0));
    EXPECT_EQ(next("every 1 minute", t), utc(2025, 3, 10, 12, 8));
    EXPECT_EQ(next("every 6 hours", t), utc(2025, 3, 10, 18, 0));
    EXPECT_EQ(next("every 24 hours", t), utc(2025, 3, 11, 0, 0));
    EXPECT_EQ(next("every 7 minutes", 0), 420);
    EXPECT_EQ(next("every 7 minutes", -1), 0);
    EXPECT_EQ(next("every 7 minutes", -421), -420);
}

TEST(Schedule, IntervalAnchors) {
    EXPECT_EQ(next("every 6 hours starting 02:30", utc(2025, 3, 10, 12, 0)), utc(2025, 3, 10, 14, 30));
    EXPECT_EQ(next("every 6 hours starting 02:30", utc(2025, 3, 10, 20, 30)), utc(2025, 3, 11, 2, 30));
    EXPECT_EQ(next("every 6 hours starting 02:30", utc(2025, 3, 10, 20, 29, 59)), utc(2025, 3, 10, 20, 30));
    EXPECT_EQ(next("every 24 hours starting 23:59", utc(2025, 12, 31, 23, 59)), utc(2026, 1, 1, 23, 59));
    EXPECT_EQ(next("every 12 hours starting 00:00", utc(2028, 2, 28, 13, 0)), utc(2028, 2, 29, 0, 0));
    EXPECT_EQ(next("every 15 minutes starting 00:05", utc(2025, 1, 1, 0, 0)), utc(2025, 1, 1, 0, 5));
    EXPECT_EQ(next("every 15 minutes starting 10:05", utc(2025, 1, 1, 0, 0)), utc(2025, 1, 1, 0, 5));
    // An interval that does not divide a day: anchor + k * interval, from 1970-01-01 02:00.
    const int64_t t = utc(2025, 3, 10, 0, 0);
    const int64_t anchor = 2 * 3600, every = 7 * 3600;
    const int64_t expected = anchor + ((t - anchor) / every + 1) * every;
    EXPECT_EQ(next("every 7 hours starting 02:00", t), expected);
    EXPECT_EQ((expected - anchor) % every, 0);
}

TEST(Schedule, InvalidInputsNameTheProblemAndShowExamples) {
    expect_error("", "the schedule is empty");
    expect_error("   ", "the schedule is empty");
    expect_error("every 0 minutes", "the interval must be at least 1 minute");
    expect_error("every 0 hours", "the interval must be at least 1 minute");
    expect_error("every -5 minutes", "'-5' is not a whole number");
    expect_error("every 1.5 hours", "'1.5' is not a whole number");
    expect_error("every five minutes", "'five' is not a whole number");
    expect_error("every 5", "expected 'every N minutes' or 'every N hours'");
    expect_error("every", "expected 'every N minutes' or 'every N hours'");
    expect_error("every 5 days", "unknown unit 'days'");
    expect_error("every 5 minute", "write 'minutes' when the number is not 1");
    expect_error("every 2 hour", "write 'hours' when the number is not 1");
    expect_error("every 5 minutes starting", "after the interval");
    expect_error("every 5 minutes from 02:00", "after the interval");
    expect_error("every 5 minutes starting 02:00 daily", "after the interval");
    expect_error("every 6 hours starting 24:00", "is not a time of day");
    expect_error("every 6 hours starting 02:60", "is not a time of day");
    expect_error("every 6 hours starting 2pm", "is not HH:MM");
    expect_error("every 6 hours starting 02:3", "is not HH:MM");
    expect_error("every 6 hours starting 002:30", "is not HH:MM");
    expect_error("every 99999999999 minutes", "too large");
    expect_error("daily", "unknown schedule 'daily'");
    expect_error("* * * *", "a cron expression has five fields");
    expect_error("* * * * * *", "a cron expression has five fields");
    expect_error("60 * * * *", "cron minute field '60': '60' is out of range (expected 0-59)");
    expect_error("* 24 * * *", "cron hour field");
    expect_error("* * 0 * *", "cron day-of-month field '0'");
    expect_error("* * 32 * *", "out of range");
    expect_error("* * * 13 *", "expected 1-12 or JAN-DEC");
    expect_error("* * * * 8", "expected 0-7 or SUN-SAT (0 and 7 = Sunday)");
    expect_error("* * * FOO *", "'FOO' is not a valid value");
    expect_error("* * * * MON-FOO", "'FOO' is not a valid value");
    expect_error("* * * MON *", "'MON' is not a valid value");  // day name in the month field
    expect_error("*/0 * * * *", "the step must be at least 1");
    expect_error("*/x * * * *", "the step 'x' is not a whole number");
    expect_error("5/10 * * * *", "a step needs '*' or a range before it");
    expect_error("10-5 * * * *", "the range '10-5' is backwards");
    expect_error("1,,2 * * * *", "an empty list element");
    expect_error("1, * * * *", "an empty list element");
    expect_error("- * * * *", "a value is missing");
    expect_error("0 0 31 2 *", "never fires");
    expect_error("0 0 30 2 *", "never fires");
    expect_error("0 0 31 4,6,9,11 *", "never fires");
    // The text shown is cut when long.
    expect_error(std::string(300, 'x'), "...\": unknown schedule");
}

// ---- cron ---------------------------------------------------------------------------------------

TEST(Cron, ParseAndCanonical) {
    Schedule s = parse_schedule("  */5   *  * *   * ");
    EXPECT_EQ(s.kind, Schedule::Kind::Cron);
    EXPECT_EQ(s.canonical, "*/5 * * * *");
}

TEST(Cron, Bits) {
    Schedule s = parse_schedule("*/5 0-23/6 1,15 jan-mar,Dec mon-fri");
    uint64_t mins = 0;
    for (int m = 0; m < 60; m += 5) mins |= uint64_t{1} << m;
    EXPECT_EQ(s.minutes, mins);
    EXPECT_EQ(s.hours, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
    EXPECT_EQ(s.days_of_month, (1u << 1) | (1u << 15));
    EXPECT_EQ(s.months, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 12));
    EXPECT_EQ(s.days_of_week, 0x3E);
    EXPECT_FALSE(s.dom_star);
    EXPECT_FALSE(s.dow_star);
    EXPECT_EQ(s.canonical, "*/5 0-23/6 1,15 JAN-MAR,DEC MON-FRI");

    EXPECT_EQ(parse_schedule("0 0 * * 7").days_of_week, 1u);
    EXPECT_EQ(parse_schedule("0 0 * * 0").days_of_week, 1u);
    EXPECT_EQ(parse_schedule("0 0 * * 5-7").days_of_week, (1u << 5) | (1u << 6) | 1u);
    EXPECT_EQ(parse_schedule("0 0 * * SUN,sat").days_of_week, (1u << 6) | 1u);
    EXPECT_EQ(parse_schedule("0 0 * * */2").days_of_week, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 6));
    EXPECT_EQ(parse_schedule("1-10/3 * * * *").minutes, (1u << 1) | (1u << 4) | (1u << 7) | (1u << 10));
    EXPECT_EQ(parse_schedule("*/90 * * * *").minutes, 1u);
    EXPECT_EQ(parse_schedule("05 * * * *").minutes, 1u << 5);
    EXPECT_TRUE(parse_schedule("0 0 */2 * *").dom_star);
}

TEST(Cron, EveryFiveMinutes) {
    EXPECT_EQ(next("*/5 * * * *", utc(2025, 3, 10, 12, 7, 13)), utc(2025, 3, 10, 12, 10));
    EXPECT_EQ(next("*/5 * * * *", utc(2025, 3, 10, 12, 10)), utc(2025, 3, 10, 12, 15));
    EXPECT_EQ(next("*/5 * * * *", utc(2025, 3, 10, 12, 9, 59)), utc(2025, 3, 10, 12, 10));
    EXPECT_EQ(next("* * * * *", utc(2025, 3, 10, 12, 9, 59)), utc(2025, 3, 10, 12, 10));
    EXPECT_EQ(next("* * * * *", utc(2025, 3, 10, 12, 10)), utc(2025, 3, 10, 12, 11));
    EXPECT_EQ(next("*/5 * * * *", utc(2025, 12, 31, 23, 58)), utc(2026, 1, 1, 0, 0));
}

TEST(Cron, MonthEndsAndLeapYears) {
    EXPECT_EQ(next("0 0 31 * *", utc(2025, 4, 1)), utc(2025, 5, 31));
    EXPECT_EQ(next("0 0 31 * *", utc(2025, 1, 31)), utc(2025, 3, 31));  // skips February
    EXPECT_EQ(next("30 23 30 * *", utc(2025, 1, 30, 23, 30)), utc(2025, 3, 30, 23, 30));
    EXPECT_EQ(next("0 0 29 2 *", utc(2025, 1, 1)), utc(2028, 2, 29));
    EXPECT_EQ(next("0 0 29 2 *", utc(2028, 2, 29)), utc(2032, 2, 29));
    EXPECT_EQ(next("0 0 29 2 *", utc(2096, 3, 1)), utc(2104, 2, 29));  // 2100 is not a leap year
    EXPECT_EQ(next("0 0 29 2 *", utc(1999, 3, 1)), utc(2000, 2, 29));  // 2000 is
    EXPECT_EQ(next("0 12 28-31 2 *", utc(2027, 2, 28, 12, 0)), utc(2028, 2, 28, 12, 0));
    EXPECT_EQ(next("0 12 28-31 2 *", utc(2028, 2, 28, 12, 0)), utc(2028, 2, 29, 12, 0));
    EXPECT_EQ(next("59 23 31 12 *", utc(2025, 12, 31, 23, 59)), utc(2026, 12, 31, 23, 59));
    EXPECT_EQ(next("0 0 1 * *", utc(2025, 12, 15)), utc(2026, 1, 1));
}

TEST(Cron, DayOfWeekDayOfMonthRule) {
    // 2025-06-01 is a Sunday; 2025-06-06 a Friday; 2025-06-13 a Friday.
    // Both restricted: OR.
    EXPECT_EQ(next("0 12 13 * FRI", utc(2025, 6, 1)), utc(2025, 6, 6, 12));
    EXPECT_EQ(next("0 12 13 * 5", utc(2025, 6, 6, 12)), utc(2025, 6, 13, 12));
    EXPECT_EQ(next("0 0 1-31/2 * MON", utc(2025, 6, 1)), utc(2025, 6, 2));  // Monday, even day
    EXPECT_EQ(next("0 0 1 * MON", utc(2025, 6, 2)), utc(2025, 6, 9));
    // Day-of-month starts with '*': AND (Vixie cron / pg_cron / crontab(5)).
    EXPECT_EQ(next("0 0 */2 * MON", utc(2025, 6, 1)), utc(2025, 6, 9));      // Monday with odd day
    EXPECT_EQ(next("0 0 * * MON", utc(2025, 6, 1)), utc(2025, 6, 2));
    EXPECT_EQ(next("0 0 13 * *", utc(2025, 6, 1)), utc(2025, 6, 13));
    // Day-of-week starts with '*': AND as well. */7 = {0,7} = Sunday: Feb 29 on a Sunday.
    EXPECT_EQ(next("0 0 29 2 */7", utc(2025, 1, 1)), utc(2032, 2, 29));
    EXPECT_EQ(next("0 0 13 * */1", utc(2025, 6, 1)), utc(2025, 6, 13));
    // 7 and 0 are both Sunday.
    EXPECT_EQ(next("0 0 * * 7", utc(2025, 6, 2)), utc(2025, 6, 8));
    EXPECT_EQ(next("0 0 * * 0", utc(2025, 6, 2)), utc(2025, 6, 8));
}

TEST(Cron, StepsNamesRanges) {
    EXPECT_EQ(next("0 9 * * MON-FRI", utc(2025, 6, 6, 9, 0)), utc(2025, 6, 9, 9, 0));  // Fri -> Mon
    EXPECT_EQ(next("0 9 * * mon-fri", utc(2025, 6, 6, 8, 59, 59)), utc(2025, 6, 6, 9, 0));
    EXPECT_EQ(next("15 */6 * * *", utc(2025, 6, 6, 6, 15)), utc(2025, 6, 6, 12, 15));
    EXPECT_EQ(next("0 8-18/4 * * *", utc(2025, 6, 6, 16, 0)), utc(2025, 6, 7, 8, 0));
    EXPECT_EQ(next("0 0 1 JAN,jul *", utc(2025, 2, 1)), utc(2025, 7, 1));
    EXPECT_EQ(next("0 0 1 */3 *", utc(2025, 2, 1)), utc(2025, 4, 1));
    EXPECT_EQ(next("0,30 * * * *", utc(2025, 6, 6, 6, 15)), utc(2025, 6, 6, 6, 30));
    EXPECT_EQ(next("5-10/2,45 3 * * *", utc(2025, 6, 6, 3, 9)), utc(2025, 6, 6, 3, 45));
}

TEST(Cron, NegativeAndExtremeInstants) {
    EXPECT_EQ(next("0 0 * * *", -1), 0);
    EXPECT_EQ(next("0 0 * * *", -86401), -86400);
    EXPECT_EQ(next("0 0 1 1 *", utc(1969, 6, 1)), 0);
    const Schedule s = parse_schedule("* * * * *");
    EXPECT_FALSE(next_run_after(s, INT64_MAX).has_value());
    EXPECT_FALSE(next_run_after(s, INT64_MIN).has_value());
    const Schedule i = parse_schedule("every 5 minutes");
    EXPECT_FALSE(next_run_after(i, INT64_MAX).has_value());
}

// ---- brute-force cross-check against minute-by-minute matching ----------------------------------

namespace {

struct GenField {
    std::string text;
    std::vector<bool> allowed;  // indexed by value (day-of-week: 0-6)
};

const char* const kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const char* const kDays[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

class Gen {
public:
    explicit Gen(uint32_t seed) : rng_(seed) {}

    int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

    // kind: 0 minute, 1 hour, 2 dom, 3 month, 4 dow
    GenField field(int kind) {
        static const int lo_of[] = {0, 0, 1, 1, 0}, hi_of[] = {59, 23, 31, 12, 7};
        const int lo = lo_of[kind], hi = hi_of[kind];
        GenField f;
        f.allowed.assign(hi + 1, false);
        const int shape = uniform(0, 9);
        if (shape <= 1 && kind != 0) {  // '*' (minutes are always restricted to keep runs sparse enough)
            f.text = "*";
            for (int v = lo; v <= hi; ++v) set(f, kind, v);
            return f;
        }
        if (shape == 2) {
            const int step = uniform(1, std::max(1, (hi - lo + 1) / 2));
            f.text = "*/" + std::to_string(step);
            for (int v = lo; v <= hi; v += step) set(f, kind, v);
            return f;
        }
        const int items = uniform(1, 3);
        for (int i = 0; i < items; ++i) {
            if (i) f.text += ',';
            const int item = uniform(0, 2);
            int a = uniform(lo, hi);
            if (item == 0) {
                f.text += value(kind, a);
                set(f, kind, a);
            } else {
                int b = uniform(a, std::min(hi, a + uniform(0, hi - lo)));
                const int step = item == 2 ? uniform(1, 5) : 1;
                f.text += value(kind, a) + "-" + value(kind, b);
                if (item == 2) f.text += "/" + std::to_string(step);
                for (int v = a; v <= b; v += step) set(f, kind, v);
            }
        }
        return f;
    }

private:
    void set(GenField& f, int kind, int v) { f.allowed[(kind == 4 && v == 7) ? 0 : v] = true; }

    std::string value(int kind, int v) {
        const bool name = uniform(0, 2) == 0;
        if (kind == 3 && name) return lower_maybe(kMonths[v - 1]);
        if (kind == 4 && name && v < 7) return lower_maybe(kDays[v]);
        return std::to_string(v);
    }
    std::string lower_maybe(std::string s) {
        if (uniform(0, 1))
            for (char& c : s) c = static_cast<char>(c - 'A' + 'a');
        return s;
    }

    std::mt19937 rng_;
};

struct Expected {
    GenField f[5];
    bool dom_star, dow_star;
};

bool brute_matches_day(const Expected& e, const std::tm& tm) {
    if (!e.f[3].allowed[tm.tm_mon + 1]) return false;
    const bool dom = e.f[2].allowed[tm.tm_mday];
    const bool dow = e.f[4].allowed[tm.tm_wday];
    return (e.dom_star || e.dow_star) ? (dom && dow) : (dom || dow);
}

// First matching minute strictly after `after`, scanning at most `limit_minutes` minutes.
std::optional<int64_t> brute_next(const Expected& e, int64_t after, int64_t limit_minutes) {
    int64_t t = (after / 60) * 60 + 60;  // after >= 0 here
    int64_t day = -1;
    bool day_ok = false;
    for (int64_t i = 0; i < limit_minutes; ++i, t += 60) {
        if (t / 86400 != day) {
            day = t / 86400;
            const time_t tt = static_cast<time_t>(t);
            std::tm tm{};
            gmtime_r(&tt, &tm);
            day_ok = brute_matches_day(e, tm);
        }
        if (!day_ok) continue;
        const int64_t sod = t % 86400;
        if (e.f[1].allowed[sod / 3600] && e.f[0].allowed[(sod % 3600) / 60]) return t;
    }
    return std::nullopt;
}

}  // namespace

TEST(Cron, BruteForceCrossCheck) {
    Gen gen(20250610u);
    const int64_t limit_minutes = 400LL * 24 * 60;
    const int64_t lo = utc(2000, 1, 1), hi = utc(2100, 1, 1);
    std::mt19937_64 trng(42);
    int checked = 0, rejected = 0, far = 0;
    for (int iter = 0; iter < 400; ++iter) {
        Expected e;
        std::string text;
        for (int k = 0; k < 5; ++k) {
            e.f[k] = gen.field(k);
            if (k) text += ' ';
            text += e.f[k].text;
        }
        e.dom_star = e.f[2].text[0] == '*';
        e.dow_star = e.f[4].text[0] == '*';

        Schedule s;
        try {
            s = parse_schedule(text);
        } catch (const ScheduleError& err) {
            // Only an expression that never fires may be rejected.
            ++rejected;
            EXPECT_NE(std::string(err.what()).find("never fires"), std::string::npos) << text << ": " << err.what();
            EXPECT_FALSE(brute_next(e, lo, limit_minutes).has_value()) << text;
            continue;
        }
        for (int rep = 0; rep < 3; ++rep) {
            int64_t after = lo + static_cast<int64_t>(trng() % static_cast<uint64_t>(hi - lo));
            if (rep == 1) after -= after % 60;  // exactly on a minute
            const auto fast = next_run_after(s, after);
            ASSERT_TRUE(fast.has_value()) << text;
            EXPECT_GT(*fast, after);
            EXPECT_EQ(*fast % 60, 0);
            const auto slow = brute_next(e, after, limit_minutes);
            if (slow) {
                EXPECT_EQ(*fast, *slow) << text << " after " << after;
            } else {
                ++far;
                EXPECT_GE(*fast, after + limit_minutes * 60) << text << " after " << after;
            }
            ++checked;
        }
    }
    EXPECT_GT(checked, 900);
    RecordProperty("checked", checked);
    RecordProperty("rejected", rejected);
    RecordProperty("far", far);
}

TEST(Cron, SparseExpressionsAreFast) {
    // Worst cases for the search: rare dates, and a 400-year scan for a rejected expression.
    const Schedule s = parse_schedule("0 0 29 2 */7");
    int64_t t = utc(2025, 1, 1);
    for (int i = 0; i < 20; ++i) {
        auto n = next_run_after(s, t);
        ASSERT_TRUE(n);
        std::tm tm{};
        const time_t tt = static_cast<time_t>(*n);
        gmtime_r(&tt, &tm);
        EXPECT_EQ(tm.tm_mon, 1);
        EXPECT_EQ(tm.tm_mday, 29);
        EXPECT_EQ(tm.tm_wday, 0);
        t = *n;
    }
    for (int i = 0; i < 100; ++i) EXPECT_THROW(parse_schedule("0 0 31 2,4,6,9,11 *"), ScheduleError);
}
