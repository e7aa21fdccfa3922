#include "scheduler/shmem.hpp"
#include "scheduler/wake.hpp"

#include "pg/guard.hpp"

namespace ia {

namespace {

bool callback_registered = false;
bool wake_pending = false;

void
at_transaction_end(XactEvent event, void *)
{
	switch (event) {
	case XACT_EVENT_COMMIT:
		if (wake_pending)
			(void) scheduler::wake(MyDatabaseId);
		wake_pending = false;
		break;
	case XACT_EVENT_ABORT:
	case XACT_EVENT_PREPARE:
	case XACT_EVENT_PARALLEL_COMMIT:
	case XACT_EVENT_PARALLEL_ABORT:
		wake_pending = false;
		break;
	default:
		break;
	}
}

}  // namespace

void
wake_scheduler_at_commit()
{
	if (!scheduler::shmem_available())
		return;
	if (!callback_registered) {
		pg::guard([] { RegisterXactCallback(at_transaction_end, nullptr); });
		callback_registered = true;
	}
	wake_pending = true;
}

}  // namespace ia
