#include "engine/sync_lock.hpp"

#include "pg/spi.hpp"

namespace ia {

int32_t
sync_lock_key(int64_t sync_id)
{
	return static_cast<int32_t>(sync_id % 2147483647);
}

SyncLock::SyncLock(int64_t sync_id, const std::string &what)
{
	pg::SqlValue got = pg::exec_scalar("SELECT pg_try_advisory_xact_lock($1::integer, $2::integer)",
	                                   {std::to_string(kSyncLockClass), std::to_string(sync_lock_key(sync_id))});
	if (!got || *got != "t")
		throw pg::UserError(ERRCODE_LOCK_NOT_AVAILABLE, "cannot " + what + " the sync while a run of it is going",
		                    "Wait for the run to end (see iterable_audience.sync_runs where status = 'running'), or "
		                    "cancel it with pg_cancel_backend() on the backend running run_sync().");
}

bool
try_lock_sync_for_run(int64_t sync_id)
{
	pg::SqlValue got = pg::exec_scalar("SELECT pg_try_advisory_lock($1::integer, $2::integer)",
	                                   {std::to_string(kSyncLockClass), std::to_string(sync_lock_key(sync_id))});
	return got && *got == "t";
}

void
unlock_sync_for_run(int64_t sync_id)
{
	pg::exec("SELECT pg_advisory_unlock($1::integer, $2::integer)",
	         {std::to_string(kSyncLockClass), std::to_string(sync_lock_key(sync_id))});
}

}  // namespace ia
