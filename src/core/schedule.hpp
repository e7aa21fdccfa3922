// Sync schedules (sql-api.md "Schedules"), all in UTC:
//   'manual'
//   'continuous': runs when the source changed (sql-api.md "Continuous schedules"): no due time;
//     the scheduler polls the source's change log instead (src/scheduler/continuous.cpp)
//   'every N minutes' / 'every N hours' (case-insensitive, extra spaces tolerated; the singular
//     'minute'/'hour' only when N = 1), optionally followed by ' starting HH:MM': runs at
//     anchor + k * interval, the anchor being HH:MM of 1970-01-01 UTC (00:00 without 'starting',
//     so 'every 15 minutes' fires at :00, :15, :30, :45). Any interval of one minute or more.
//   a five-field cron expression: minute hour day-of-month month day-of-week, with '*', numbers,
//     ranges 'a-b', lists 'a,b', steps '*/n' and 'a-b/n', month names JAN-DEC and day names
//     SUN-SAT (case-insensitive), day-of-week 0-7 (0 and 7 = Sunday). As in Vixie cron / pg_cron /
//     crontab(5): when both day-of-month and day-of-week are restricted (neither field starts with
//     '*'), a day matches if EITHER matches; otherwise both must match (so '0 0 */2 * MON' means
//     Mondays with an odd day of month). Expressions that can never fire (e.g. '0 0 31 2 *') are
//     rejected.
// Date math is done here (proleptic Gregorian calendar, civil-from-days), independent of the C
// library's time zone and locale.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ia {

struct Schedule {
    enum class Kind { Manual, Continuous, Interval, Cron } kind = Kind::Manual;

    // Interval: runs at anchor_seconds + k * interval_seconds (Unix seconds, any integer k).
    int64_t interval_seconds = 0;
    int64_t anchor_seconds = 0;  // seconds after 1970-01-01 00:00 UTC, in [0, 86400)
    bool has_anchor = false;     // ' starting HH:MM' was given

    // Cron: bit i set = value i allowed.
    uint64_t minutes = 0;         // bits 0-59
    uint32_t hours = 0;           // bits 0-23
    uint32_t days_of_month = 0;   // bits 1-31
    uint16_t months = 0;          // bits 1-12
    uint8_t days_of_week = 0;     // bits 0-6, 0 = Sunday (7 is folded into 0)
    bool dom_star = true;         // the day-of-month field starts with '*'
    bool dow_star = true;         // the day-of-week field starts with '*'

    std::string canonical;        // normalized text to store, e.g. "every 6 hours starting 02:30",
                                  // "*/5 * * * *", "0 9 * * MON-FRI"
};

struct ScheduleError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws ScheduleError whose message names the problem and shows accepted examples, e.g.
//   invalid schedule "every 0 minutes": the interval must be at least 1 minute; accepted: 'manual',
//   'every 15 minutes', 'every 6 hours starting 02:30', or a cron expression such as '*/5 * * * *' (UTC)
Schedule parse_schedule(std::string_view text);

// Next run strictly after `after_unix_seconds` (UTC); std::nullopt for Manual and Continuous (and for instants
// beyond about 300,000 years from 1970). Cron has minute resolution.
std::optional<int64_t> next_run_after(const Schedule& schedule, int64_t after_unix_seconds);

}  // namespace ia

#include "core/cpp_only.hpp"
