#include "core/schedule.hpp"

#include <vector>

namespace ia {
namespace {

constexpr const char* kAccepted =
    "; accepted: 'manual', 'continuous', 'every 15 minutes', 'every 6 hours starting 02:30', "
    "or a cron expression such as '*/5 * * * *' (UTC)";

// Instants further than this from 1970 are refused by next_run_after (no overflow anywhere).
constexpr int64_t kMaxAbsInstant = 10'000'000'000'000LL;  // ~317,000 years
constexpr int64_t kMaxIntervalCount = 1'000'000'000;      // N in 'every N minutes|hours'

// Months scanned by the cron search: 400 Gregorian years are exactly 146097 days = 20871 weeks,
// so the calendar (weekdays included) repeats; if nothing matches in 400 years + the current
// month, nothing ever will.
constexpr int kCronSearchMonths = 400 * 12 + 1;

[[noreturn]] void fail(std::string_view text, const std::string& problem) {
    std::string msg = "invalid schedule \"";
    constexpr std::size_t kMaxShown = 100;
    if (text.size() > kMaxShown) {
        std::size_t cut = kMaxShown;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
        msg.append(text.data(), cut);
        msg += "...";
    } else {
        msg.append(text.data(), text.size());
    }
    msg += "\": ";
    msg += problem;
    msg += kAccepted;
    throw ScheduleError(msg);
}

constexpr bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
constexpr char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::vector<std::string_view> split_ws(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && is_space(s[i])) ++i;
        const std::size_t b = i;
        while (i < s.size() && !is_space(s[i])) ++i;
        if (i > b) out.push_back(s.substr(b, i - b));
    }
    return out;
}

// Digits only, at most `max_digits` of them.
bool parse_uint(std::string_view s, std::size_t max_digits, int64_t& out) {
    if (s.empty() || s.size() > max_digits) return false;
    int64_t v = 0;
    for (char c : s) {
        if (!is_digit(c)) return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

std::string quoted(std::string_view s) {
    std::string out = "'";
    out.append(s.data(), s.size());
    out += '\'';
    return out;
}

constexpr int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// ---- civil calendar (H. Hinnant's algorithms) -------------------------------------------------

constexpr int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

struct Civil {
    int64_t y;
    int m, d;
};

constexpr Civil civil_from_days(int64_t z) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    return Civil{yoe + era * 400 + (m <= 2), m, d};
}

constexpr bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
constexpr int days_in_month(int64_t y, int m) {
    constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return (m == 2 && is_leap(y)) ? 29 : kDays[m - 1];
}
// 0 = Sunday; 1970-01-01 was a Thursday.
constexpr int weekday(int64_t days) { return static_cast<int>(((days % 7) + 11) % 7); }

static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);
static_assert(civil_from_days(11016).m == 2 && civil_from_days(11016).d == 29);
static_assert(weekday(0) == 4);

// ---- interval ---------------------------------------------------------------------------------

Schedule parse_interval(std::string_view text, const std::vector<std::string_view>& tok) {
    if (tok.size() < 3) fail(text, "expected 'every N minutes' or 'every N hours'");
    int64_t n = 0;
    if (!parse_uint(tok[1], 12, n))
        fail(text, quoted(tok[1]) + " is not a whole number (write 'every 15 minutes' or 'every 6 hours')");
    if (n == 0) fail(text, "the interval must be at least 1 minute");
    if (n > kMaxIntervalCount) fail(text, "the interval is too large");

    const std::string_view unit = tok[2];
    int64_t unit_seconds = 0;
    bool singular = false;
    if (iequals(unit, "minutes") || iequals(unit, "minute")) {
        unit_seconds = 60;
        singular = iequals(unit, "minute");
    } else if (iequals(unit, "hours") || iequals(unit, "hour")) {
        unit_seconds = 3600;
        singular = iequals(unit, "hour");
    } else {
        fail(text, "unknown unit " + quoted(unit) + " (use minutes or hours)");
    }
    if (singular && n != 1)
        fail(text, "write " + quoted(std::string(unit) + "s") + " when the number is not 1");

    Schedule s;
    s.kind = Schedule::Kind::Interval;
    s.interval_seconds = n * unit_seconds;
    s.canonical = "every " + std::to_string(n) + (unit_seconds == 60 ? " minute" : " hour") + (n == 1 ? "" : "s");

    if (tok.size() == 3) return s;
    if (!iequals(tok[3], "starting") || tok.size() != 5)
        fail(text, "expected nothing or ' starting HH:MM' after the interval");
    const std::string_view hhmm = tok[4];
    const std::size_t colon = hhmm.find(':');
    int64_t hh = 0, mm = 0;
    if (colon == std::string_view::npos || colon == 0 || colon > 2 || hhmm.size() - colon - 1 != 2 ||
        !parse_uint(hhmm.substr(0, colon), 2, hh) || !parse_uint(hhmm.substr(colon + 1), 2, mm))
        fail(text, "the start time " + quoted(hhmm) + " is not HH:MM (UTC, e.g. 02:30)");
    if (hh > 23 || mm > 59) fail(text, "the start time " + quoted(hhmm) + " is not a time of day (00:00 to 23:59)");
    s.has_anchor = true;
    s.anchor_seconds = hh * 3600 + mm * 60;
    char buf[8] = {' ', static_cast<char>('0' + hh / 10), static_cast<char>('0' + hh % 10), ':',
                   static_cast<char>('0' + mm / 10), static_cast<char>('0' + mm % 10), 0, 0};
    s.canonical += " starting";
    s.canonical.append(buf, 6);
    return s;
}

// ---- cron -------------------------------------------------------------------------------------

struct FieldSpec {
    const char* label;
    int lo, hi;
    const char* const* names;  // names[i] is value name_base + i, or nullptr
    int name_base;
    int name_count;
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr FieldSpec kFields[5] = {
    {"minute", 0, 59, nullptr, 0, 0},
    {"hour", 0, 23, nullptr, 0, 0},
    {"day-of-month", 1, 31, nullptr, 0, 0},
    {"month", 1, 12, kMonthNames, 1, 12},
    {"day-of-week", 0, 7, kDayNames, 0, 7},
};

class CronFieldParser {
public:
    CronFieldParser(std::string_view text, const FieldSpec& spec, std::string_view field)
        : text_(text), spec_(spec), field_(field) {}

    uint64_t parse() {
        uint64_t bits = 0;
        std::size_t start = 0;
        while (true) {
            const std::size_t comma = field_.find(',', start);
            const std::string_view item =
                field_.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
            bits |= parse_item(item);
            if (comma == std::string_view::npos) break;
            start = comma + 1;
        }
        return bits;
    }

private:
    [[noreturn]] void error(const std::string& what) const {
        fail(text_, std::string("cron ") + spec_.label + " field " + quoted(field_) + ": " + what);
    }

    std::string range_text() const {
        std::string r = std::to_string(spec_.lo) + "-" + std::to_string(spec_.hi);
        if (spec_.names == kMonthNames) r += " or JAN-DEC";
        if (spec_.names == kDayNames) r += " or SUN-SAT (0 and 7 = Sunday)";
        return r;
    }

    int parse_value(std::string_view v) const {
        if (v.empty()) error("a value is missing");
        int64_t n = 0;
        if (is_digit(v[0])) {
            if (!parse_uint(v, 4, n)) error(quoted(v) + " is not a number");
        } else {
            bool found = false;
            for (int i = 0; i < spec_.name_count; ++i) {
                if (iequals(v, spec_.names[i])) {
                    n = spec_.name_base + i;
                    found = true;
                    break;
                }
            }
            if (!found) error(quoted(v) + " is not a valid value (expected " + range_text() + ")");
        }
        if (n < spec_.lo || n > spec_.hi) error(quoted(v) + " is out of range (expected " + range_text() + ")");
        return static_cast<int>(n);
    }

    uint64_t parse_item(std::string_view item) const {
        if (item.empty()) error("an empty list element");
        std::string_view range = item;
        int64_t step = 1;
        const std::size_t slash = item.find('/');
        if (slash != std::string_view::npos) {
            range = item.substr(0, slash);
            const std::string_view st = item.substr(slash + 1);
            if (!parse_uint(st, 4, step)) error("the step " + quoted(st) + " is not a whole number");
            if (step == 0) error("the step must be at least 1");
        }
        int lo, hi;
        if (range == "*") {
            lo = spec_.lo;
            hi = spec_.hi;
        } else {
            const std::size_t dash = range.find('-');
            if (dash == std::string_view::npos) {
                lo = hi = parse_value(range);
                if (slash != std::string_view::npos)
                    error("a step needs '*' or a range before it (e.g. '*/" + std::to_string(step) + "' or '" +
                          std::string(range) + "-" + std::to_string(spec_.hi) + "/" + std::to_string(step) + "')");
            } else {
                lo = parse_value(range.substr(0, dash));
                hi = parse_value(range.substr(dash + 1));
                if (lo > hi) error("the range " + quoted(range) + " is backwards");
            }
        }
        uint64_t bits = 0;
        for (int64_t v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;
        return bits;
    }

    std::string_view text_;
    const FieldSpec& spec_;
    std::string_view field_;
};

// First time of day (seconds) >= h0:m0 allowed by the hour and minute sets.
std::optional<int64_t> first_time_of_day(const Schedule& s, int h0, int m0) {
    for (int h = h0; h < 24; ++h) {
        if (!(s.hours & (uint32_t{1} << h))) continue;
        const uint64_t mins = s.minutes & (~uint64_t{0} << (h == h0 ? m0 : 0));
        if (mins) return int64_t{h} * 3600 + int64_t{__builtin_ctzll(mins)} * 60;
    }
    return std::nullopt;
}

bool day_matches(const Schedule& s, int dom, int dow) {
    const bool dom_ok = s.days_of_month & (uint32_t{1} << dom);
    const bool dow_ok = s.days_of_week & (1u << dow);
    return (s.dom_star || s.dow_star) ? (dom_ok && dow_ok) : (dom_ok || dow_ok);
}

std::optional<int64_t> next_cron(const Schedule& s, int64_t after) {
    const int64_t start = floor_div(after, 60) * 60 + 60;  // first whole minute strictly after
    const int64_t start_day = floor_div(start, 86400);
    const int64_t sod = start - start_day * 86400;
    const int h0 = static_cast<int>(sod / 3600), m0 = static_cast<int>((sod % 3600) / 60);
    Civil c = civil_from_days(start_day);
    int64_t y = c.y;
    int m = c.m;
    int first_d = c.d;
    for (int scanned = 0; scanned < kCronSearchMonths; ++scanned) {
        if (s.months & (1u << m)) {
            const int64_t month_start = days_from_civil(y, m, 1);
            const int dim = days_in_month(y, m);
            for (int d = first_d; d <= dim; ++d) {
                const int64_t day = month_start + d - 1;
                if (!day_matches(s, d, weekday(day))) continue;
                const bool today = day == start_day;
                if (auto tod = first_time_of_day(s, today ? h0 : 0, today ? m0 : 0)) return day * 86400 + *tod;
            }
        }
        first_d = 1;
        if (++m > 12) {
            m = 1;
            ++y;
        }
    }
    return std::nullopt;
}

Schedule parse_cron(std::string_view text, const std::vector<std::string_view>& tok) {
    Schedule s;
    s.kind = Schedule::Kind::Cron;
    uint64_t bits[5];
    for (int i = 0; i < 5; ++i) bits[i] = CronFieldParser(text, kFields[i], tok[i]).parse();
    s.minutes = bits[0];
    s.hours = static_cast<uint32_t>(bits[1]);
    s.days_of_month = static_cast<uint32_t>(bits[2]);
    s.months = static_cast<uint16_t>(bits[3]);
    uint64_t dow = bits[4];
    if (dow & (uint64_t{1} << 7)) dow = (dow | 1u) & 0x7F;  // 7 = Sunday
    s.days_of_week = static_cast<uint8_t>(dow);
    s.dom_star = tok[2][0] == '*';
    s.dow_star = tok[4][0] == '*';

    for (int i = 0; i < 5; ++i) {
        if (i) s.canonical += ' ';
        for (char c : tok[i]) s.canonical += upper(c);
    }
    if (!next_cron(s, 0)) fail(text, "the cron expression never fires (no month has such a day)");
    return s;
}

}  // namespace

Schedule parse_schedule(std::string_view text) {
    const std::vector<std::string_view> tok = split_ws(text);
    if (tok.empty()) fail(text, "the schedule is empty");
    if (tok.size() == 1 && iequals(tok[0], "manual")) {
        Schedule s;
        s.kind = Schedule::Kind::Manual;
        s.canonical = "manual";
        return s;
    }
    if (tok.size() == 1 && iequals(tok[0], "continuous")) {
        Schedule s;
        s.kind = Schedule::Kind::Continuous;
        s.canonical = "continuous";
        return s;
    }
    if (iequals(tok[0], "every")) return parse_interval(text, tok);
    if (tok.size() == 5) return parse_cron(text, tok);
    if (tok.size() == 1) fail(text, "unknown schedule " + quoted(tok[0]));
    fail(text, "a cron expression has five fields (minute hour day-of-month month day-of-week), this has " +
                   std::to_string(tok.size()));
}

std::optional<int64_t> next_run_after(const Schedule& s, int64_t after) {
    if (after > kMaxAbsInstant || after < -kMaxAbsInstant) return std::nullopt;
    switch (s.kind) {
        case Schedule::Kind::Manual:
        case Schedule::Kind::Continuous:
            return std::nullopt;
        case Schedule::Kind::Interval: {
            if (s.interval_seconds <= 0) return std::nullopt;
            const int64_t k = floor_div(after - s.anchor_seconds, s.interval_seconds) + 1;
            return s.anchor_seconds + k * s.interval_seconds;
        }
        case Schedule::Kind::Cron:
            return next_cron(s, after);
    }
    return std::nullopt;
}

}  // namespace ia
