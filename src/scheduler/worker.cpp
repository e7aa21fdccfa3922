// Entry point and main loop of the scheduler of one database (a dynamic background worker started by
// the launcher), in plain PostgreSQL style; each pass is C++ behind scheduler::run_pass(), which never
// throws.
//
// It exits (and the launcher decides whether to start it again) when the extension is not installed
// in its database, when asked to step aside for DROP/ALTER/CREATE DATABASE, and on SIGTERM.
//
// Signals: SIGTERM (pg_terminate_backend, shutdown) -> die(): the next CHECK_FOR_INTERRUPTS exits
// with FATAL; the launcher starts the scheduler again 5 s later (a shutdown starts nothing). SIGHUP
// -> reload the configuration (max_concurrent_syncs). SIGUSR1 -> PostgreSQL's procsignal handler,
// which sets the latch: the loop then calls CHECK_FOR_INTERRUPTS, absorbing the barriers DROP
// DATABASE waits for. SIGINT (cancel) is ignored: there is no query to cancel. Postmaster death:
// WL_EXIT_ON_PM_DEATH.
#include "scheduler/scheduler.hpp"
#include "scheduler/pass.hpp"
#include "scheduler/shmem.hpp"
#include "settings.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/wait_event.h"
}

extern "C" {

PGDLLEXPORT void ia_scheduler_main(Datum main_arg);

void
ia_scheduler_main(Datum main_arg)
{
	sigjmp_buf	local_sigjmp_buf;
	MemoryContext pass_context;
	volatile bool pause_after_error = false;
	int			entry = DatumGetInt32(main_arg);
	Oid			database_id;
	char		database_name[NAMEDATALEN];
	char	   *name;

	memcpy(&database_id, MyBgworkerEntry->bgw_extra, sizeof(database_id));
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(database_id, InvalidOid, 0);
	SetConfigOption("application_name", "iterable_audience scheduler", PGC_USERSET, PGC_S_SESSION);
	/*
	 * A reload signalled after the postmaster forked this worker but before the handler above was set
	 * was ignored (a background worker starts with SIGHUP ignored): read the configuration once now,
	 * or a setting changed just before this worker started would wait for the next reload.
	 */
	ProcessConfigFile(PGC_SIGHUP);

	StartTransactionCommand();
	name = get_database_name(MyDatabaseId);
	strlcpy(database_name, name ? name : "?", sizeof(database_name));
	CommitTransactionCommand();

	/* Another scheduler already serves the database (possible after the launcher restarted). */
	if (!ia::scheduler::attach(entry, MyDatabaseId, database_name))
		proc_exit(0);

	pass_context = AllocSetContextCreate(TopMemoryContext, "iterable_audience scheduler pass", ALLOCSET_DEFAULT_SIZES);

	/*
	 * Last line of defence: an ERROR that escaped the pass's own handling is reported here, its
	 * transaction rolled back, and the loop goes on after a pause (never a crash loop).
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		HOLD_INTERRUPTS();
		EmitErrorReport();
		AbortCurrentTransaction();
		FlushErrorState();
		MemoryContextSwitchTo(TopMemoryContext);
		RESUME_INTERRUPTS();
		pause_after_error = true;
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		long		sleep_ms;

		MemoryContextSwitchTo(pass_context);
		MemoryContextReset(pass_context);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (ia::scheduler::step_aside_requested())
		{
			ereport(LOG, (errmsg("iterable_audience scheduler stepping aside: database \"%s\" is being dropped, "
			                     "renamed or copied; it starts again in 5 s if the database is still there",
			                     database_name)));
			ia::scheduler::report_stepped_aside();
			proc_exit(0);
		}
		if (pause_after_error)
		{
			pause_after_error = false;
			sleep_ms = 10000;
		}
		else
		{
			ia::scheduler::PassOutcome outcome = ia::scheduler::run_pass(database_name);

			if (outcome.extension_missing)
				proc_exit(0);	/* the launcher starts one again on CREATE EXTENSION */
			sleep_ms = outcome.sleep_ms;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

}

namespace ia::scheduler {

bool
start_scheduler_worker(int entry, uint32_t database_id, const char *database_name, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	Oid			oid = database_id;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher decides */
	strlcpy(worker.bgw_library_name, "iterable_audience", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ia_scheduler_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "iterable_audience scheduler for %s", database_name);
	strlcpy(worker.bgw_type, "iterable_audience scheduler", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(entry);
	memcpy(worker.bgw_extra, &oid, sizeof(oid));
	worker.bgw_notify_pid = MyProcPid;	/* the launcher's latch is set when it starts and stops */
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

}  // namespace ia::scheduler
