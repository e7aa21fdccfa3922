#include "scheduler/shmem.hpp"
#include "scheduler/wake.hpp"

#include "pg/guard.hpp"

namespace ia {

namespace {

bool callback_registered = false;
bool scheduler_wake_pending = false;
bool launcher_wake_pending = false;
bool recheck_pending = false;

void
at_transaction_end(XactEvent event, void *)
{
	switch (event) {
	case XACT_EVENT_COMMIT:
		// After ProcArrayEndTransaction: whoever is woken sees this transaction's work.
		if (scheduler_wake_pending && !scheduler::wake(MyDatabaseId))
			scheduler::wake_launcher(true);
		if (launcher_wake_pending)
			scheduler::wake_launcher(recheck_pending);
		break;
	default:
		break;
	}
	switch (event) {
	case XACT_EVENT_COMMIT:
	case XACT_EVENT_ABORT:
	case XACT_EVENT_PREPARE:
	case XACT_EVENT_PARALLEL_COMMIT:
	case XACT_EVENT_PARALLEL_ABORT:
		scheduler_wake_pending = launcher_wake_pending = recheck_pending = false;
		break;
	default:
		break;
	}
}

// May raise a PostgreSQL error (out of memory).
void
register_callback()
{
	if (!callback_registered) {
		RegisterXactCallback(at_transaction_end, nullptr);
		callback_registered = true;
	}
}

}  // namespace

void
wake_scheduler_at_commit()
{
	if (!scheduler::shmem_available())
		return;
	pg::guard([] { register_callback(); });
	scheduler_wake_pending = true;
}

void
wake_scheduler_at_commit_c()
{
	if (!scheduler::shmem_available())
		return;
	register_callback();
	scheduler_wake_pending = true;
}

void
wake_launcher_at_commit_c(bool recheck)
{
	if (!scheduler::shmem_available())
		return;
	register_callback();
	launcher_wake_pending = true;
	recheck_pending = recheck_pending || recheck;
}

}  // namespace ia
