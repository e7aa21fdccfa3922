// SQL API: next_due_time(schedule, after, n): the n-th due time of a schedule strictly after an
// instant, as the scheduler computes it (core/schedule.hpp). sync_health's overdue uses it.
#include "core/schedule.hpp"

#include "pg/args.hpp"

namespace {

constexpr int64_t kUnixEpochInPostgresSeconds = (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

// Whole Unix seconds at or before the instant: "strictly after" the floor is "strictly after" the
// instant itself, since due times fall on whole seconds.
int64_t
unix_seconds_floor(TimestampTz t)
{
	int64_t seconds = t / USECS_PER_SEC;
	if (t % USECS_PER_SEC < 0)
		seconds--;
	return seconds + kUnixEpochInPostgresSeconds;
}

}  // namespace

IA_SQL_FUNCTION(ia_next_due_time)
{
	std::string_view text = ia::pg::arg_text_view(fcinfo, 0);
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(1);
	int32_t n = PG_GETARG_INT32(2);
	if (n < 1)
		throw ia::pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "n must be 1 or more");
	if (TIMESTAMP_NOT_FINITE(after))
		PG_RETURN_NULL();
	ia::Schedule schedule;
	try {
		schedule = ia::parse_schedule(text);
	} catch (const ia::ScheduleError &e) {
		throw ia::pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, e.what());
	}
	std::optional<int64_t> due = unix_seconds_floor(after);
	for (int32_t i = 0; i < n && due; i++)
		due = ia::next_run_after(schedule, *due);
	if (!due)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ((*due - kUnixEpochInPostgresSeconds) * USECS_PER_SEC);
}
