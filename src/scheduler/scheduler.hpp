// The scheduler: with the library in shared_preload_libraries, a static background worker (the
// launcher, launcher.cpp) starts one dynamic background worker per database where the extension is
// installed (the database's scheduler, worker.cpp), which runs that database's due syncs. See
// docs/scheduler.md.
#pragma once

#include <cstdint>

struct BackgroundWorkerHandle;

namespace ia::scheduler {

// From _PG_init while shared_preload_libraries is processed (not in binary upgrade): registers the
// launcher, reserves the shared memory, and installs the hook that lets DROP DATABASE through.
void register_at_preload();

// In the launcher: registers the scheduler of a database (shared entry `entry`). False when no
// background worker slot is free; the handle is allocated in the current memory context.
bool start_scheduler_worker(int entry, uint32_t database_id, const char *database_name,
                            BackgroundWorkerHandle **handle);

}  // namespace ia::scheduler
