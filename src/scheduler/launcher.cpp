// The launcher: a static background worker, connected to no database, that keeps one scheduler
// (worker.cpp) going for every database where the extension is installed, as TimescaleDB's launcher
// does. In plain PostgreSQL style (nothing here owns a C++ destructor).
//
// Every 5 s, or when its latch is set (a scheduler started or stopped, CREATE DATABASE, CREATE
// EXTENSION iterable_audience, create_sync or wake_scheduler() in a database without a scheduler), it
//   * reads pg_database (a shared catalog): every database that accepts connections and is not a
//     template, or only the one named by iterable_audience.database_name when that is set;
//   * starts a scheduler for each such database that has none. A scheduler whose database lacks the
//     extension exits at once, saying so; the launcher then leaves that database alone until a
//     transaction asks for a recheck (recheck_generation() moved). At most kMaxProbes such looks
//     go on at once;
//   * after any other exit of a scheduler (step aside, pg_terminate_backend, an error), starts it
//     again 5 s later if the database is still there; with no free background worker slot, logs it
//     once and tries again every 10 s.
// The handles of the schedulers it started live in its own memory only.
#include "scheduler/scheduler.hpp"
#include "scheduler/database_hook.hpp"
#include "scheduler/shmem.hpp"
#include "settings.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/wait_event.h"
}

namespace {

constexpr long kPollMs = 5000;              // pg_database is read at least this often
constexpr long kRestartDelayMs = 5000;      // after a scheduler's exit other than "not installed"
constexpr long kNoSlotRetryMs = 10000;      // after RegisterDynamicBackgroundWorker failed
constexpr int kMaxProbes = 4;               // schedulers at once for databases not known to be served

struct KnownDatabase {
	Oid			oid;
	char		name[NAMEDATALEN];
	bool		seen;				/* in the latest read of pg_database */
	BackgroundWorkerHandle *handle; /* the scheduler this launcher started, or NULL */
	bool		no_extension;		/* its scheduler found no extension ... */
	uint32		checked_generation; /* ... as of this recheck generation */
	TimestampTz retry_after;
	bool		said_no_slot;
	bool		said_no_entry;
};

KnownDatabase *known = NULL;
int			known_count = 0;
int			known_capacity = 0;
bool		said_restricted_missing = false;

bool
restricted()
{
	return ia::settings::database_name != NULL && ia::settings::database_name[0] != '\0';
}

KnownDatabase *
find_or_add(Oid oid)
{
	for (int i = 0; i < known_count; i++)
		if (known[i].oid == oid)
			return &known[i];
	if (known_count == known_capacity)
	{
		known_capacity = known_capacity == 0 ? 16 : known_capacity * 2;
		known = known == NULL
			? (KnownDatabase *) MemoryContextAlloc(TopMemoryContext, known_capacity * sizeof(KnownDatabase))
			: (KnownDatabase *) repalloc(known, known_capacity * sizeof(KnownDatabase));
	}
	KnownDatabase *k = &known[known_count++];
	memset(k, 0, sizeof(*k));
	k->oid = oid;
	return k;
}

/*
 * Reads pg_database: marks the databases to serve as seen, with their current names.
 */
void
read_databases()
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	bool		restricted_found = false;

	for (int i = 0; i < known_count; i++)
		known[i].seen = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (restricted() && strcmp(NameStr(db->datname), ia::settings::database_name) != 0)
			continue;
		if (!db->datallowconn || db->datistemplate)
			continue;
#ifdef DATCONNLIMIT_INVALID_DB
		if (db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;			/* an interrupted DROP DATABASE left it */
#endif
		KnownDatabase *k = find_or_add(db->oid);
		k->seen = true;
		strlcpy(k->name, NameStr(db->datname), sizeof(k->name));
		restricted_found = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	if (restricted() && !restricted_found && !said_restricted_missing)
		ereport(LOG, (errmsg("iterable_audience launcher: database \"%s\" named by iterable_audience.database_name "
		                     "does not exist or does not accept connections; looking for it every 5 s",
		                     ia::settings::database_name)));
	said_restricted_missing = restricted() && !restricted_found;
}

/*
 * Notices that the scheduler of k has exited, and why.
 */
void
reap(KnownDatabase *k, TimestampTz now)
{
	bool		stopped_now = false;

	if (k->handle != NULL)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(k->handle, &pid) != BGWH_STOPPED)
			return;
		pfree(k->handle);
		k->handle = NULL;
		stopped_now = true;
	}
	int			entry = ia::scheduler::entry_for(k->oid, false);

	if (entry < 0)
	{
		if (stopped_now)
			k->retry_after = now + kRestartDelayMs * 1000;
		return;
	}
	ia::scheduler::EntryView view = ia::scheduler::entry_view(entry);

	if (view.pid != 0)
		return;					/* running (e.g. started by a launcher before a restart of ours) */
	switch (ia::scheduler::entry_take_exit(entry))
	{
		case ia::scheduler::ExitKind::kNotInstalled:
			k->no_extension = true;
			k->checked_generation = view.checked_generation;
			ia::scheduler::entry_free(entry);
			break;
		case ia::scheduler::ExitKind::kSteppedAside:
		case ia::scheduler::ExitKind::kStopped:
			k->retry_after = now + kRestartDelayMs * 1000;
			ia::scheduler::entry_set_state(entry, "stopped; the launcher starts it again in 5 s");
			break;
		case ia::scheduler::ExitKind::kNone:
			if (stopped_now)	/* it failed before it attached (e.g. could not connect) */
			{
				k->retry_after = now + kRestartDelayMs * 1000;
				ia::scheduler::entry_set_state(entry, "could not start (see the server log); trying again in 5 s");
			}
			break;
	}
}

/*
 * Starts the scheduler of k; on failure says why (once) and schedules a retry.
 */
void
start(KnownDatabase *k, TimestampTz now)
{
	int			entry = ia::scheduler::entry_for(k->oid, true);
	bool		started;

	if (entry < 0)
	{
		if (!k->said_no_entry)
			ereport(LOG, (errmsg("iterable_audience launcher: cannot serve database \"%s\": schedulers for %d databases "
			                     "are already running or starting; trying again every 10 s",
			                     k->name, ia::scheduler::kMaxDatabases)));
		k->said_no_entry = true;
		k->retry_after = now + kNoSlotRetryMs * 1000;
		return;
	}
	k->said_no_entry = false;
	ia::scheduler::entry_prepare_start(entry, k->name);
	{
		MemoryContext saved = MemoryContextSwitchTo(TopMemoryContext);

		started = ia::scheduler::start_scheduler_worker(entry, k->oid, k->name, &k->handle);
		MemoryContextSwitchTo(saved);
	}
	if (!started)
	{
		k->handle = NULL;
		if (!k->said_no_slot)
			ereport(LOG, (errmsg("iterable_audience launcher: no free background worker slot for the scheduler of "
			                     "database \"%s\" (max_worker_processes = %d); trying again every 10 s",
			                     k->name, max_worker_processes),
			              errhint("Raise max_worker_processes (a server restart), or stop other background workers.")));
		k->said_no_slot = true;
		k->retry_after = now + kNoSlotRetryMs * 1000;
		ia::scheduler::entry_set_state(entry, "not running: no free background worker slot (max_worker_processes); "
		                                      "the launcher tries again every 10 s");
		return;
	}
	if (k->said_no_slot)
		ereport(LOG, (errmsg("iterable_audience launcher: started the scheduler of database \"%s\" after waiting for "
		                     "a background worker slot", k->name)));
	k->said_no_slot = false;
	k->no_extension = false;
}

/*
 * Whether the scheduler of k is a probe: a look at a database not known to have the extension.
 */
bool
probing(const KnownDatabase *k)
{
	int			entry;

	if (k->handle == NULL)
		return false;
	entry = ia::scheduler::entry_for(k->oid, false);
	return entry < 0 || !ia::scheduler::entry_view(entry).serving;
}

/*
 * One pass: read pg_database, reap exited schedulers, start the missing ones. Returns how long to
 * sleep.
 */
long
launcher_pass()
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake_at = now + kPollMs * 1000;
	uint32		generation = ia::scheduler::recheck_generation();
	int			probes = 0;

	read_databases();
	for (int i = 0; i < known_count; i++)
	{
		reap(&known[i], now);
		if (probing(&known[i]))
			probes++;
	}

	for (int i = 0; i < known_count;)
	{
		KnownDatabase *k = &known[i];

		if (!k->seen)
		{
			/* Dropped, renamed out of the restriction, made a template or closed to connections. */
			if (k->handle != NULL)
			{
				TerminateBackgroundWorker(k->handle);
				i++;
				continue;		/* forgotten once it has stopped */
			}
			ia::scheduler::entry_free(ia::scheduler::entry_for(k->oid, false));
			known[i] = known[--known_count];
			continue;
		}
		i++;
		if (k->handle != NULL)
			continue;
		int			entry = ia::scheduler::entry_for(k->oid, false);

		if (entry >= 0 && ia::scheduler::entry_view(entry).pid != 0)
			continue;
		if (k->no_extension && k->checked_generation == generation)
			continue;
		if (now < k->retry_after)
		{
			wake_at = Min(wake_at, k->retry_after);
			continue;
		}
		if (probes >= kMaxProbes)
			continue;			/* looked at in a later pass; a probe's exit wakes us */
		start(k, now);
		if (k->handle != NULL)
			probes++;
		else
			wake_at = Min(wake_at, k->retry_after);
	}
	{
		uint32_t   *keep = (uint32_t *) palloc(Max(known_count, 1) * sizeof(uint32_t));

		for (int i = 0; i < known_count; i++)
			keep[i] = known[i].oid;
		ia::scheduler::entry_free_others(keep, known_count);
		pfree(keep);
	}
	return Max(1, (long) ((wake_at - now) / 1000));
}

}  // namespace

extern "C" {

PGDLLEXPORT void ia_launcher_main(Datum main_arg);

void
ia_launcher_main(Datum)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();

	/* No database: only the shared catalogs (pg_database). */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	/*
	 * A reload signalled after the postmaster forked this worker but before the handler above was set
	 * was ignored (a background worker starts with SIGHUP ignored): read the configuration once now,
	 * or a setting changed just before this worker started would wait for the next reload.
	 */
	ProcessConfigFile(PGC_SIGHUP);
	ia::scheduler::launcher_attach();
	if (restricted())
		ereport(LOG, (errmsg("iterable_audience launcher started: serving database \"%s\" "
		                     "(iterable_audience.database_name)", ia::settings::database_name)));
	else
		ereport(LOG, (errmsg("iterable_audience launcher started: serving every database where the extension is "
		                     "installed")));

	/*
	 * No sigsetjmp here: an ERROR (e.g. out of memory reading pg_database) ends the launcher, and the
	 * postmaster starts it again 5 s later; its schedulers keep running meanwhile.
	 */
	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		pgstat_report_activity(STATE_RUNNING, "iterable_audience launcher: looking at the databases");
		sleep_ms = launcher_pass();
		pgstat_report_activity(STATE_IDLE, "iterable_audience launcher: waiting");

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

}

namespace ia::scheduler {

void
register_at_preload()
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "iterable_audience", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ia_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "iterable_audience launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "iterable_audience launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);

	install_shmem_hooks();
	install_database_hook();
}

}  // namespace ia::scheduler
