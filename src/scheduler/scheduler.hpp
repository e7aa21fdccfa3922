// The scheduler: a static background worker, registered when the library is in
// shared_preload_libraries, that runs the due syncs of one database (iterable_audience.database_name).
// See docs/scheduler.md.
#pragma once

namespace ia::scheduler {

// From _PG_init while shared_preload_libraries is processed (not in binary upgrade): registers the
// worker, reserves its shared memory, and installs the hook that lets DROP DATABASE through.
void register_at_preload();

}  // namespace ia::scheduler
