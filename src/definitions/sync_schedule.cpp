#include "core/schedule.hpp"
#include "definitions/sync_schedule.hpp"

#include "pg/guard.hpp"

namespace ia {

std::string
checked_schedule(const std::string &text)
{
	try {
		return parse_schedule(text).canonical;
	} catch (const ScheduleError &e) {
		throw pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, e.what());
	}
}

std::optional<std::string>
next_run_at_text(const std::string &schedule)
{
	Schedule parsed = parse_schedule(schedule);
	TimestampTz now = GetCurrentTimestamp();
	int64_t now_unix = now / USECS_PER_SEC + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	std::optional<int64_t> next = next_run_after(parsed, now_unix);
	if (!next)
		return std::nullopt;
	return std::to_string(*next);
}

}  // namespace ia
