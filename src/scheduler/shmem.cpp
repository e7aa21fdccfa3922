#include "scheduler/shmem.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
}

namespace ia::scheduler {

namespace {

struct SchedulerShared {
	slock_t mutex;
	pid_t pid;             // 0: no scheduler is running
	Latch *latch;          // &MyProc->procLatch of the scheduler: shared memory
	Oid database_id;
	char database_name[NAMEDATALEN];
	bool step_aside;
	TimestampTz started_at;
	TimestampTz last_wake_at;
	TimestampTz next_wake_at;
	int running_runs;
	int max_concurrent_syncs;
	int64 runs_started;
	int64 runs_skipped;
	char state[128];
};

SchedulerShared *shared = nullptr;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

void
request_shmem(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SchedulerShared)));
}

void
startup_shmem(void)
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = static_cast<SchedulerShared *>(ShmemInitStruct("iterable_audience scheduler", sizeof(SchedulerShared), &found));
	if (!found) {
		memset(shared, 0, sizeof(SchedulerShared));
		SpinLockInit(&shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
detach(int, Datum)
{
	SpinLockAcquire(&shared->mutex);
	if (shared->pid == MyProcPid) {
		shared->pid = 0;
		shared->latch = nullptr;
		shared->running_runs = 0;
		strlcpy(shared->state, "stopped", sizeof(shared->state));
	}
	SpinLockRelease(&shared->mutex);
}

}  // namespace

void
install_shmem_hooks()
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

bool
shmem_available()
{
	return shared != nullptr;
}

void
attach(uint32_t database_id, const char *database_name)
{
	TimestampTz now = GetCurrentTimestamp();
	SpinLockAcquire(&shared->mutex);
	shared->pid = MyProcPid;
	shared->latch = &MyProc->procLatch;
	shared->database_id = database_id;
	strlcpy(shared->database_name, database_name, sizeof(shared->database_name));
	shared->step_aside = false;
	shared->started_at = now;
	shared->last_wake_at = now;
	shared->next_wake_at = 0;
	shared->running_runs = 0;
	strlcpy(shared->state, "starting", sizeof(shared->state));
	SpinLockRelease(&shared->mutex);
	on_shmem_exit(detach, 0);
}

bool
wake(uint32_t database_id)
{
	if (shared == nullptr)
		return false;
	Latch *latch = nullptr;
	SpinLockAcquire(&shared->mutex);
	if (shared->pid != 0 && shared->database_id == database_id)
		latch = shared->latch;
	SpinLockRelease(&shared->mutex);
	if (latch != nullptr)
		SetLatch(latch);
	return latch != nullptr;
}

void
request_step_aside(uint32_t database_id)
{
	if (shared == nullptr)
		return;
	Latch *latch = nullptr;
	SpinLockAcquire(&shared->mutex);
	if (shared->pid != 0 && shared->database_id == database_id) {
		shared->step_aside = true;
		latch = shared->latch;
	}
	SpinLockRelease(&shared->mutex);
	if (latch != nullptr)
		SetLatch(latch);
}

bool
step_aside_requested()
{
	SpinLockAcquire(&shared->mutex);
	bool requested = shared->step_aside && shared->pid == MyProcPid;
	SpinLockRelease(&shared->mutex);
	return requested;
}

void
report_pass(int64_t woke_at, int64_t next_wake_at, int running_runs, int max_concurrent_syncs, const char *state)
{
	SpinLockAcquire(&shared->mutex);
	shared->last_wake_at = woke_at;
	shared->next_wake_at = next_wake_at;
	shared->running_runs = running_runs;
	shared->max_concurrent_syncs = max_concurrent_syncs;
	strlcpy(shared->state, state, sizeof(shared->state));
	SpinLockRelease(&shared->mutex);
}

void
count_started(int n)
{
	SpinLockAcquire(&shared->mutex);
	shared->runs_started += n;
	SpinLockRelease(&shared->mutex);
}

void
count_skipped(int n)
{
	SpinLockAcquire(&shared->mutex);
	shared->runs_skipped += n;
	SpinLockRelease(&shared->mutex);
}

std::optional<Status>
read_status()
{
	if (shared == nullptr)
		return std::nullopt;
	SchedulerShared copy;
	SpinLockAcquire(&shared->mutex);
	memcpy(&copy, shared, sizeof(copy));
	SpinLockRelease(&shared->mutex);
	Status s;
	s.pid = copy.pid;
	s.database_id = copy.database_id;
	s.database_name = copy.database_name;
	s.started_at = copy.started_at;
	s.last_wake_at = copy.last_wake_at;
	s.next_wake_at = copy.next_wake_at;
	s.running_runs = copy.running_runs;
	s.max_concurrent_syncs = copy.max_concurrent_syncs;
	s.runs_started = copy.runs_started;
	s.runs_skipped = copy.runs_skipped;
	s.state = copy.pid != 0 ? copy.state : "not running";
	return s;
}

}  // namespace ia::scheduler
