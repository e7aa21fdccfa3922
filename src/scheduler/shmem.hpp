// The scheduler's shared state: who it is (pid, latch, database), so that backends can wake it and
// report on it. Exists only when the library is in shared_preload_libraries. It holds shared things
// only: the latch pointer points into shared memory (the scheduler's PGPROC); no process-local
// pointer, descriptor or handle is ever stored here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ia::scheduler {

// _PG_init (preloading only): reserves the shared memory and installs the startup hook.
void install_shmem_hooks();

// False when the library was not preloaded (no scheduler, nothing to wake).
bool shmem_available();

// In the scheduler: publish this process as the scheduler of the database; cleared at exit.
void attach(uint32_t database_id, const char *database_name);

// Sets the scheduler's latch if a scheduler serves database_id; true when it does.
bool wake(uint32_t database_id);

// Asks the scheduler of database_id to exit (it is restarted 5 s later), so that DROP DATABASE,
// ALTER DATABASE RENAME or CREATE DATABASE ... TEMPLATE find the database free.
void request_step_aside(uint32_t database_id);
bool step_aside_requested();

// What the scheduler reports about itself (times are TimestampTz, 0 = never).
struct Status {
	int pid = 0;
	uint32_t database_id = 0;
	std::string database_name;
	int64_t started_at = 0;
	int64_t last_wake_at = 0;
	int64_t next_wake_at = 0;
	int running_runs = 0;
	int max_concurrent_syncs = 0;  // as the scheduler last read it
	int64_t runs_started = 0;
	int64_t runs_skipped = 0;
	std::string state;
};

// In the scheduler.
void report_pass(int64_t woke_at, int64_t next_wake_at, int running_runs, int max_concurrent_syncs, const char *state);
void count_started(int n);
void count_skipped(int n);

// In any backend: nullopt when the library was not preloaded.
std::optional<Status> read_status();

}  // namespace ia::scheduler
