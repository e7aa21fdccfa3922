// DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE ... TEMPLATE need a database nobody
// is connected to. When one of them names the scheduler's database (and the current user owns it
// or is a superuser), the scheduler is asked to step aside first: it exits, the statement finds the
// database free, and the postmaster starts the scheduler again 5 s later. Without this, the
// scheduler would block them as pg_cron's launcher does.
#pragma once

namespace ia::scheduler {

// ProcessUtility hook, installed at preload only.
void install_database_hook();

}  // namespace ia::scheduler
