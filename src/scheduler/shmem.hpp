// The scheduling state shared by the launcher, the per-database schedulers and the backends that
// wake them or report on them. Exists only when the library is in shared_preload_libraries.
//
// One entry per database that has (or is getting) a scheduler, in a small fixed array
// (kMaxDatabases), plus the launcher's own fields. Plain data only: processes are named by pid and
// by PGPROC number (the latch is found from it), never by a pointer or handle; the launcher keeps its
// BackgroundWorkerHandles in its own memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ia::scheduler {

// Databases served at once (entries in shared memory); documented in docs/scheduler.md.
constexpr int kMaxDatabases = 64;

// _PG_init (preloading only): reserves the shared memory and installs the startup hook.
void install_shmem_hooks();

// False when the library was not preloaded (no launcher, no scheduler, nothing to wake).
bool shmem_available();

// Why a scheduler's last process ended, as it said itself (kStopped: it did not say).
enum class ExitKind : int { kNone = 0, kNotInstalled, kSteppedAside, kStopped };

// ---- the launcher ------------------------------------------------------------------------------

// Publishes this process as the launcher; cleared at exit.
void launcher_attach();
// Counts the transactions that asked for databases without the extension to be looked at again
// (CREATE EXTENSION, create_sync or wake_scheduler in a database that has no scheduler).
uint32_t recheck_generation();

// The entry of database_id, or -1; with create, a free entry is taken (-1: all are in use).
int entry_for(uint32_t database_id, bool create);
void entry_free(int index);
// Before starting a scheduler process for the entry: forgets the previous process's exit and any
// step-aside request, and says "starting".
void entry_prepare_start(int index, const char *database_name);
void entry_set_state(int index, const char *state);

struct EntryView {
	uint32_t database_id = 0;
	int pid = 0;                 // 0: no scheduler process attached
	bool serving = false;        // its scheduler found the extension installed
	ExitKind exit = ExitKind::kNone;
	uint32_t checked_generation = 0;  // with kNotInstalled: recheck_generation() before it looked
};
EntryView entry_view(int index);
// Frees the entries without a scheduler process whose database is not among the `count` keep[]
// (e.g. databases dropped while the launcher was restarting).
void entry_free_others(const uint32_t *keep, int count);
// Reads the entry's exit reason and resets it to kNone.
ExitKind entry_take_exit(int index);

// ---- the scheduler of one database ---------------------------------------------------------------

// Publishes this process as the scheduler of entry `index`; false (do nothing, exit) when the entry
// is no longer database_id's or another live scheduler already serves it. Cleared at exit.
bool attach(int index, uint32_t database_id, const char *database_name);
// The extension was found: the database is served.
void mark_serving();
void report_not_installed(uint32_t checked_generation);
void report_stepped_aside();
bool step_aside_requested();
void report_pass(int64_t woke_at, int64_t next_wake_at, int running_runs, int max_concurrent_syncs, const char *state);
void count_started(int n);
void count_skipped(int n);

// ---- any backend ---------------------------------------------------------------------------------

// Sets the latch of database_id's scheduler; true when one is running.
bool wake(uint32_t database_id);
// Sets the launcher's latch; with recheck, databases found without the extension are looked at again.
void wake_launcher(bool recheck);

// Asks the scheduler of database_id to exit (the launcher starts it again 5 s later if the database
// is still there), so that DROP DATABASE, ALTER DATABASE RENAME or CREATE DATABASE ... TEMPLATE
// find the database free.
void request_step_aside(uint32_t database_id);

// What a database's scheduler reports about itself (times are TimestampTz, 0 = never).
struct Status {
	bool launcher_running = false;
	bool has_entry = false;      // the launcher has started (or tried to start) a scheduler for it
	int pid = 0;
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

// nullopt when the library was not preloaded.
std::optional<Status> read_status(uint32_t database_id);

}  // namespace ia::scheduler
