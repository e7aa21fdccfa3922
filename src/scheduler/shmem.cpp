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

constexpr int kNoProc = -1;

struct DatabaseEntry {
	Oid database_id;       // InvalidOid: the entry is free
	pid_t pid;             // 0: no scheduler process attached
	int procno;            // its PGPROC number (its latch), kNoProc when pid is 0
	char database_name[NAMEDATALEN];
	bool step_aside;
	bool serving;
	int exit_kind;         // ExitKind
	uint32 checked_generation;
	TimestampTz started_at;
	TimestampTz last_wake_at;
	TimestampTz next_wake_at;
	int running_runs;
	int max_concurrent_syncs;
	int64 runs_started;
	int64 runs_skipped;
	char state[128];
};

struct SchedulerShared {
	slock_t mutex;
	pid_t launcher_pid;    // 0: no launcher
	int launcher_procno;
	uint32 recheck_generation;
	DatabaseEntry entries[kMaxDatabases];
};

SchedulerShared *shared = nullptr;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

int my_entry = -1;     // in a scheduler: the entry it attached to

void
request_shmem(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SchedulerShared)));
}

void
clear_entry(DatabaseEntry &e)
{
	memset(&e, 0, sizeof(e));
	e.procno = kNoProc;
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
		shared->launcher_procno = kNoProc;
		for (DatabaseEntry &e : shared->entries)
			clear_entry(e);
	}
	LWLockRelease(AddinShmemInitLock);
}

Latch *
latch_of(int procno)
{
	return procno == kNoProc ? nullptr : &ProcGlobal->allProcs[procno].procLatch;
}

bool
valid_index(int index)
{
	return index >= 0 && index < kMaxDatabases;
}

void
launcher_detach(int, Datum)
{
	SpinLockAcquire(&shared->mutex);
	if (shared->launcher_pid == MyProcPid) {
		shared->launcher_pid = 0;
		shared->launcher_procno = kNoProc;
	}
	SpinLockRelease(&shared->mutex);
}

void
detach(int, Datum)
{
	SpinLockAcquire(&shared->mutex);
	DatabaseEntry &e = shared->entries[my_entry];
	if (e.pid == MyProcPid) {
		e.pid = 0;
		e.procno = kNoProc;
		e.running_runs = 0;
		if (e.exit_kind == static_cast<int>(ExitKind::kNone))
			e.exit_kind = static_cast<int>(ExitKind::kStopped);
		strlcpy(e.state, "stopped", sizeof(e.state));
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

// ---- the launcher ------------------------------------------------------------------------------

void
launcher_attach()
{
	SpinLockAcquire(&shared->mutex);
	shared->launcher_pid = MyProcPid;
	shared->launcher_procno = MyProc->pgprocno;
	SpinLockRelease(&shared->mutex);
	on_shmem_exit(launcher_detach, 0);
}

uint32_t
recheck_generation()
{
	SpinLockAcquire(&shared->mutex);
	uint32 generation = shared->recheck_generation;
	SpinLockRelease(&shared->mutex);
	return generation;
}

int
entry_for(uint32_t database_id, bool create)
{
	int found = -1;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < kMaxDatabases && found < 0; i++)
		if (shared->entries[i].database_id == database_id)
			found = i;
	if (found < 0 && create) {
		for (int i = 0; i < kMaxDatabases && found < 0; i++)
			if (shared->entries[i].database_id == InvalidOid) {
				found = i;
				clear_entry(shared->entries[i]);
				shared->entries[i].database_id = database_id;
			}
	}
	SpinLockRelease(&shared->mutex);
	return found;
}

void
entry_free(int index)
{
	if (!valid_index(index))
		return;
	SpinLockAcquire(&shared->mutex);
	if (shared->entries[index].pid == 0)
		clear_entry(shared->entries[index]);
	SpinLockRelease(&shared->mutex);
}

void
entry_prepare_start(int index, const char *database_name)
{
	SpinLockAcquire(&shared->mutex);
	DatabaseEntry &e = shared->entries[index];
	strlcpy(e.database_name, database_name, sizeof(e.database_name));
	e.step_aside = false;
	e.exit_kind = static_cast<int>(ExitKind::kNone);
	strlcpy(e.state, "starting", sizeof(e.state));
	SpinLockRelease(&shared->mutex);
}

void
entry_set_state(int index, const char *state)
{
	SpinLockAcquire(&shared->mutex);
	strlcpy(shared->entries[index].state, state, sizeof(shared->entries[index].state));
	SpinLockRelease(&shared->mutex);
}

EntryView
entry_view(int index)
{
	EntryView v;
	SpinLockAcquire(&shared->mutex);
	const DatabaseEntry &e = shared->entries[index];
	v.database_id = e.database_id;
	v.pid = e.pid;
	v.serving = e.serving;
	v.exit = static_cast<ExitKind>(e.exit_kind);
	v.checked_generation = e.checked_generation;
	SpinLockRelease(&shared->mutex);
	return v;
}

void
entry_free_others(const uint32_t *keep, int count)
{
	SpinLockAcquire(&shared->mutex);
	for (DatabaseEntry &e : shared->entries) {
		if (e.database_id == InvalidOid || e.pid != 0)
			continue;
		bool kept = false;
		for (int i = 0; i < count && !kept; i++)
			kept = keep[i] == e.database_id;
		if (!kept)
			clear_entry(e);
	}
	SpinLockRelease(&shared->mutex);
}

ExitKind
entry_take_exit(int index)
{
	SpinLockAcquire(&shared->mutex);
	ExitKind kind = static_cast<ExitKind>(shared->entries[index].exit_kind);
	shared->entries[index].exit_kind = static_cast<int>(ExitKind::kNone);
	SpinLockRelease(&shared->mutex);
	return kind;
}

// ---- the scheduler of one database ---------------------------------------------------------------

bool
attach(int index, uint32_t database_id, const char *database_name)
{
	if (!valid_index(index))
		return false;
	TimestampTz now = GetCurrentTimestamp();
	bool attached = false;
	SpinLockAcquire(&shared->mutex);
	DatabaseEntry &e = shared->entries[index];
	if (e.database_id == database_id && e.pid == 0) {
		e.pid = MyProcPid;
		e.procno = MyProc->pgprocno;
		strlcpy(e.database_name, database_name, sizeof(e.database_name));
		e.started_at = now;
		e.last_wake_at = now;
		e.next_wake_at = 0;
		e.running_runs = 0;
		e.exit_kind = static_cast<int>(ExitKind::kNone);
		strlcpy(e.state, "starting", sizeof(e.state));
		attached = true;
	}
	SpinLockRelease(&shared->mutex);
	if (attached) {
		my_entry = index;
		on_shmem_exit(detach, 0);
	}
	return attached;
}

void
mark_serving()
{
	SpinLockAcquire(&shared->mutex);
	shared->entries[my_entry].serving = true;
	SpinLockRelease(&shared->mutex);
}

void
report_not_installed(uint32_t checked_generation)
{
	SpinLockAcquire(&shared->mutex);
	DatabaseEntry &e = shared->entries[my_entry];
	e.exit_kind = static_cast<int>(ExitKind::kNotInstalled);
	e.checked_generation = checked_generation;
	e.serving = false;
	SpinLockRelease(&shared->mutex);
}

void
report_stepped_aside()
{
	SpinLockAcquire(&shared->mutex);
	shared->entries[my_entry].exit_kind = static_cast<int>(ExitKind::kSteppedAside);
	SpinLockRelease(&shared->mutex);
}

bool
step_aside_requested()
{
	SpinLockAcquire(&shared->mutex);
	bool requested = shared->entries[my_entry].step_aside;
	SpinLockRelease(&shared->mutex);
	return requested;
}

void
report_pass(int64_t woke_at, int64_t next_wake_at, int running_runs, int max_concurrent_syncs, const char *state)
{
	SpinLockAcquire(&shared->mutex);
	DatabaseEntry &e = shared->entries[my_entry];
	e.last_wake_at = woke_at;
	e.next_wake_at = next_wake_at;
	e.running_runs = running_runs;
	e.max_concurrent_syncs = max_concurrent_syncs;
	strlcpy(e.state, state, sizeof(e.state));
	SpinLockRelease(&shared->mutex);
}

void
count_started(int n)
{
	SpinLockAcquire(&shared->mutex);
	shared->entries[my_entry].runs_started += n;
	SpinLockRelease(&shared->mutex);
}

void
count_skipped(int n)
{
	SpinLockAcquire(&shared->mutex);
	shared->entries[my_entry].runs_skipped += n;
	SpinLockRelease(&shared->mutex);
}

// ---- any backend ---------------------------------------------------------------------------------

bool
wake(uint32_t database_id)
{
	if (shared == nullptr)
		return false;
	Latch *latch = nullptr;
	SpinLockAcquire(&shared->mutex);
	for (const DatabaseEntry &e : shared->entries)
		if (e.database_id == database_id && e.pid != 0)
			latch = latch_of(e.procno);
	SpinLockRelease(&shared->mutex);
	if (latch != nullptr)
		SetLatch(latch);
	return latch != nullptr;
}

void
wake_launcher(bool recheck)
{
	if (shared == nullptr)
		return;
	SpinLockAcquire(&shared->mutex);
	if (recheck)
		shared->recheck_generation++;
	Latch *latch = shared->launcher_pid != 0 ? latch_of(shared->launcher_procno) : nullptr;
	SpinLockRelease(&shared->mutex);
	if (latch != nullptr)
		SetLatch(latch);
}

void
request_step_aside(uint32_t database_id)
{
	if (shared == nullptr)
		return;
	Latch *latch = nullptr;
	SpinLockAcquire(&shared->mutex);
	// Also an entry whose scheduler is still starting: it sees the request as soon as it attaches.
	for (DatabaseEntry &e : shared->entries)
		if (e.database_id == database_id) {
			e.step_aside = true;
			latch = e.pid != 0 ? latch_of(e.procno) : nullptr;
		}
	SpinLockRelease(&shared->mutex);
	if (latch != nullptr)
		SetLatch(latch);
}

std::optional<Status>
read_status(uint32_t database_id)
{
	if (shared == nullptr)
		return std::nullopt;
	DatabaseEntry copy;
	bool found = false;
	Status s;
	SpinLockAcquire(&shared->mutex);
	s.launcher_running = shared->launcher_pid != 0;
	for (const DatabaseEntry &e : shared->entries)
		if (e.database_id == database_id) {
			memcpy(&copy, &e, sizeof(copy));
			found = true;
		}
	SpinLockRelease(&shared->mutex);
	if (!found)
		return s;
	s.has_entry = true;
	s.pid = copy.pid;
	s.database_name = copy.database_name;
	s.started_at = copy.started_at;
	s.last_wake_at = copy.last_wake_at;
	s.next_wake_at = copy.next_wake_at;
	s.running_runs = copy.running_runs;
	s.max_concurrent_syncs = copy.max_concurrent_syncs;
	s.runs_started = copy.runs_started;
	s.runs_skipped = copy.runs_skipped;
	s.state = copy.state;
	return s;
}

}  // namespace ia::scheduler
