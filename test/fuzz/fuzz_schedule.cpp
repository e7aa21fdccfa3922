// libFuzzer target: schedules (src/core/schedule.hpp).
//
// Input: the schedule text, optionally followed by a NUL byte and up to 6 times of 8 bytes each
// (little-endian int64, folded into +-2^43 s, about +-280,000 years). Fixed instants (the epoch,
// leap days, year boundaries, the edges of the supported range) are always tried as well.
//
// Invariants checked:
//   * parse_schedule returns or throws ia::ScheduleError, nothing else;
//   * the canonical text parses to the same schedule (and the same canonical text);
//   * next_run_after(t) > t; next_run_after(result - 1) == result;
//   * interval: result = anchor + k * interval and result - interval <= t;
//   * cron: always a result (an accepted expression fires at least every 400 years), on a whole
//     minute, whose UTC fields (from gmtime_r, independent of schedule.cpp's calendar code) match
//     the expression; no minute in (t, result) matches, checked by brute force over the first day
//     after t, then day by day over the next 400 days.
#include <cstdint>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/schedule.hpp"
#include "fuzz_check.hpp"

namespace {

constexpr int64_t kRange = 10'000'000'000'000LL;  // next_run_after gives nothing beyond +-kRange (schedule.cpp)

struct Fields {
    int minute, hour, dom, month, dow;
};

Fields utc_fields(int64_t t) {
    const time_t tt = static_cast<time_t>(t);
    struct tm tm;
    FUZZ_CHECK(gmtime_r(&tt, &tm) != nullptr, "gmtime_r(%lld) failed", static_cast<long long>(t));
    return Fields{tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon + 1, tm.tm_wday};
}

bool day_matches(const ia::Schedule& s, const Fields& f) {
    if (!(s.months & (1u << f.month))) return false;
    const bool dom = s.days_of_month & (1u << f.dom);
    const bool dow = s.days_of_week & (1u << f.dow);
    return (s.dom_star || s.dow_star) ? (dom && dow) : (dom || dow);
}

bool cron_matches(const ia::Schedule& s, int64_t t) {
    const Fields f = utc_fields(t);
    return day_matches(s, f) && (s.hours & (1u << f.hour)) && (s.minutes & (uint64_t{1} << f.minute));
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool same_schedule(const ia::Schedule& a, const ia::Schedule& b) {
    return a.kind == b.kind && a.interval_seconds == b.interval_seconds && a.anchor_seconds == b.anchor_seconds &&
           a.has_anchor == b.has_anchor && a.minutes == b.minutes && a.hours == b.hours &&
           a.days_of_month == b.days_of_month && a.months == b.months && a.days_of_week == b.days_of_week &&
           a.dom_star == b.dom_star && a.dow_star == b.dow_star && a.canonical == b.canonical;
}

void check_cron_fields(const ia::Schedule& s) {
    FUZZ_CHECK(s.minutes != 0 && s.minutes < (uint64_t{1} << 60), "minute bits %llx",
               static_cast<unsigned long long>(s.minutes));
    FUZZ_CHECK(s.hours != 0 && s.hours < (1u << 24), "hour bits %x", s.hours);
    FUZZ_CHECK(s.days_of_month != 0 && (s.days_of_month & 1u) == 0, "day-of-month bits %x", s.days_of_month);
    FUZZ_CHECK(s.months != 0 && (s.months & 1u) == 0 && s.months < (1u << 13), "month bits %x", s.months);
    FUZZ_CHECK(s.days_of_week != 0 && s.days_of_week < (1u << 7), "day-of-week bits %x", s.days_of_week);
}

void check_next(const ia::Schedule& s, int64_t t) {
    const std::optional<int64_t> next = ia::next_run_after(s, t);
    if (s.kind == ia::Schedule::Kind::Manual) {
        FUZZ_CHECK(!next, "a manual schedule has a next run");
        return;
    }
    const bool in_range = t > -kRange && t < kRange;
    if (!next) {
        FUZZ_CHECK(!in_range, "no next run after %lld", static_cast<long long>(t));
        return;
    }
    const int64_t r = *next;
    FUZZ_CHECK(r > t, "next run %lld is not after %lld", static_cast<long long>(r), static_cast<long long>(t));
    if (r - 1 <= kRange) {  // (beyond it next_run_after gives nothing)
        const std::optional<int64_t> again = ia::next_run_after(s, r - 1);
        FUZZ_CHECK(again && *again == r, "%s: next_run_after(%lld) = %lld but next_run_after(that - 1) differs",
                   s.canonical.c_str(), static_cast<long long>(t), static_cast<long long>(r));
    }

    if (s.kind == ia::Schedule::Kind::Interval) {
        FUZZ_CHECK((r - s.anchor_seconds) % s.interval_seconds == 0, "not on the interval grid");
        FUZZ_CHECK(r - s.interval_seconds <= t, "an earlier run on the grid was skipped");
        return;
    }
    FUZZ_CHECK(r % 60 == 0, "not on a whole minute");
    FUZZ_CHECK(cron_matches(s, r), "%s: next run %lld does not match", s.canonical.c_str(), static_cast<long long>(r));
    // Brute force: nothing matches between t and r. Minute by minute over the first day...
    const int64_t first = floor_div(t, 60) * 60 + 60;
    const int64_t first_day = floor_div(first, 86400);
    if (day_matches(s, utc_fields(first_day * 86400))) {
        for (int64_t m = first; m < r && m < (first_day + 1) * 86400; m += 60) {
            const int64_t sod = m - first_day * 86400;
            FUZZ_CHECK(!((s.hours & (1u << (sod / 3600))) && (s.minutes & (uint64_t{1} << (sod % 3600 / 60)))),
                       "%s: %lld matches before the next run %lld", s.canonical.c_str(), static_cast<long long>(m),
                       static_cast<long long>(r));
        }
    }
    // ...then whole days (a matching day has matching minutes: hours and minutes are never empty).
    const int64_t r_day = floor_div(r, 86400);
    for (int64_t d = first_day + 1, n = 0; d < r_day && n < 400; ++d, ++n)
        FUZZ_CHECK(!day_matches(s, utc_fields(d * 86400)), "%s: day %lld matches before the next run %lld",
                   s.canonical.c_str(), static_cast<long long>(d), static_cast<long long>(r));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t nul = input.find('\0');
    const std::string_view text = input.substr(0, nul);

    ia::Schedule s;
    try {
        s = ia::parse_schedule(text);
    } catch (const ia::ScheduleError& e) {
        FUZZ_CHECK(std::strncmp(e.what(), "invalid schedule \"", 18) == 0, "message: %s", e.what());
        return 0;
    }
    FUZZ_CHECK(!s.canonical.empty(), "empty canonical text");
    if (s.kind == ia::Schedule::Kind::Cron) check_cron_fields(s);
    if (s.kind == ia::Schedule::Kind::Interval) {
        FUZZ_CHECK(s.interval_seconds >= 60 && s.interval_seconds % 60 == 0, "interval %lld",
                   static_cast<long long>(s.interval_seconds));
        FUZZ_CHECK(s.anchor_seconds >= 0 && s.anchor_seconds < 86400, "anchor %lld",
                   static_cast<long long>(s.anchor_seconds));
    }
    ia::Schedule canon;
    try {
        canon = ia::parse_schedule(s.canonical);
    } catch (const ia::ScheduleError& e) {
        FUZZ_CHECK(false, "the canonical text is refused: %s", e.what());
    }
    FUZZ_CHECK(same_schedule(s, canon), "the canonical text '%s' parses to another schedule", s.canonical.c_str());

    std::vector<int64_t> times = {0, -1, 59, 60, 951782399 /* 2000-02-28 23:59:59 */, 1709251199, 1735689599,
                                  4107542399 /* 2100-02-28 23:59:59 */, -62135596801 /* year 0 */,
                                  kRange - 1, -kRange + 1, kRange + 1, INT64_MIN, INT64_MAX};
    if (nul != std::string_view::npos) {
        std::string_view rest = input.substr(nul + 1);
        for (int i = 0; i < 6 && rest.size() >= 8; ++i, rest.remove_prefix(8)) {
            uint64_t u;
            std::memcpy(&u, rest.data(), 8);
            // Fold into +-2^43: sign-extend the low 44 bits.
            const int64_t folded = static_cast<int64_t>(u << 20) >> 20;
            times.push_back(folded);
        }
    }
    for (int64_t t : times) check_next(s, t);
    return 0;
}
