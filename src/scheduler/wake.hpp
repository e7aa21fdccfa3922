// Waking the scheduler when a transaction that changed a schedule commits (as pg_net wakes its
// worker): create_sync, alter_sync and resume_sync call wake_scheduler_at_commit(); nothing happens
// if the transaction aborts, and a transaction wakes it at most once.
#pragma once

namespace ia {

// Wakes the scheduler serving this database when the current transaction commits. A no-op without
// a scheduler (library not preloaded, or the scheduler serves another database).
void wake_scheduler_at_commit();

}  // namespace ia
