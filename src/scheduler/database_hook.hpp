// DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE ... TEMPLATE need a database nobody
// is connected to. When one of them names a database that has a scheduler (and the current user owns
// it or is a superuser), that scheduler is asked to step aside first: it exits, the statement finds
// the database free, and the launcher starts the scheduler again 5 s later if the database is still
// there. Without this, the scheduler would block them as pg_cron's launcher does.
//
// The same hook wakes the launcher after CREATE EXTENSION iterable_audience and CREATE DATABASE, and
// the database's scheduler after DROP EXTENSION iterable_audience (at commit).
#pragma once

namespace ia::scheduler {

// ProcessUtility hook, installed at preload only.
void install_database_hook();

}  // namespace ia::scheduler
