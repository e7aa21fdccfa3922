// Waking the scheduler when a transaction that changed a schedule commits (as pg_net wakes its
// worker): create_sync, alter_sync and resume_sync call wake_scheduler_at_commit(); nothing happens
// if the transaction aborts, and a transaction wakes it at most once. In a database that has no
// scheduler yet (the extension was just created), the launcher is woken instead and starts one.
#pragma once

namespace ia {

// Wakes the scheduler serving this database when the current transaction commits, or the launcher
// if none does. A no-op without preloading. Throws pg::PgError (for C++ callers).
void wake_scheduler_at_commit();

// For the ProcessUtility hook (C frames only: these may raise a PostgreSQL error).
// The launcher at commit; with recheck, databases found without the extension are looked at again.
void wake_launcher_at_commit_c(bool recheck);
void wake_scheduler_at_commit_c();

}  // namespace ia
