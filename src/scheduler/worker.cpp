// Entry point and main loop of the scheduler worker, in plain PostgreSQL style; each pass is C++
// behind scheduler::run_pass(), which never throws.
//
// Signals: SIGTERM (pg_terminate_backend, shutdown) -> die(): the next CHECK_FOR_INTERRUPTS exits
// with FATAL, i.e. exit code 1, so the postmaster starts the scheduler again 5 s later (a shutdown
// does not restart anything). SIGHUP -> reload the configuration (max_concurrent_syncs). SIGUSR1 ->
// PostgreSQL's procsignal handler, which sets the latch: the loop then calls CHECK_FOR_INTERRUPTS,
// absorbing the barriers DROP DATABASE waits for. SIGINT (cancel) is ignored: there is no query to
// cancel. Postmaster death: WL_EXIT_ON_PM_DEATH.
#include "scheduler/scheduler.hpp"
#include "scheduler/database_hook.hpp"
#include "scheduler/pass.hpp"
#include "scheduler/shmem.hpp"
#include "settings.hpp"

#include "pg/postgres.hpp"

extern "C" {
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

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(ia::settings::database_name, NULL, 0);
	SetConfigOption("application_name", "iterable_audience scheduler", PGC_USERSET, PGC_S_SESSION);
	ia::scheduler::attach(MyDatabaseId, ia::settings::database_name);
	ereport(LOG, (errmsg("iterable_audience scheduler started for database \"%s\"", ia::settings::database_name)));

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
			                     "renamed or copied; it starts again in 5 s",
			                     ia::settings::database_name)));
			proc_exit(1);
		}
		if (pause_after_error)
		{
			pause_after_error = false;
			sleep_ms = 10000;
		}
		else
			sleep_ms = ia::scheduler::run_pass();

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
	strlcpy(worker.bgw_function_name, "ia_scheduler_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "iterable_audience scheduler", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "iterable_audience scheduler", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);

	install_shmem_hooks();
	install_database_hook();
}

}  // namespace ia::scheduler
