// SQL API: run_sync(). The run happens in a background worker, because a SQL function cannot commit
// and a run commits its progress batch by batch; run_sync waits for it and returns its row.
#include "engine/run_launcher.hpp"
#include "engine/run_preparation.hpp"
#include "engine/run_progress.hpp"
#include "definitions/sync_definition.hpp"
#include "engine/sync_lock.hpp"

#include "pg/args.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
}

namespace ia {

using pg::UserError;

BackgroundWorkerHandle *
start_run_worker(const RunRequest &request, const std::string &sync_name, bool notify_me)
{
	BackgroundWorker worker;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "iterable_audience", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ia_sync_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "iterable_audience sync %s", sync_name.c_str());
	strlcpy(worker.bgw_type, "iterable_audience sync", BGW_MAXLEN);
	static_assert(sizeof(RunRequest) <= BGW_EXTRALEN, "RunRequest must fit in bgw_extra");
	memcpy(worker.bgw_extra, &request, sizeof(request));
	worker.bgw_notify_pid = notify_me ? MyProcPid : 0;

	BackgroundWorkerHandle *handle = nullptr;
	bool registered = pg::guard([&] { return RegisterDynamicBackgroundWorker(&worker, &handle); });
	if (!registered)
		throw UserError(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
		                "could not start a background worker for sync \"" + sync_name + "\": no worker slot is free",
		                "Each running sync uses one background worker; raise max_worker_processes (now " +
		                    std::to_string(max_worker_processes) + ") and restart the server.");
	return handle;
}

void
wait_for_run_worker(BackgroundWorkerHandle *handle, const std::function<void()> &while_waiting)
{
	for (;;) {
		pid_t pid;
		BgwHandleStatus status = pg::guard([&] { return GetBackgroundWorkerPid(handle, &pid); });
		if (status == BGWH_STOPPED)
			return;
		if (status == BGWH_POSTMASTER_DIED)
			throw UserError(ERRCODE_ADMIN_SHUTDOWN, "the server stopped while the sync was running");
		if (pg::interrupt_pending()) {
			// Stop the run too: the worker records it as interrupted before it exits.
			pg::guard([&] { TerminateBackgroundWorker(handle); });
			for (int i = 0; i < 100; i++) {
				status = pg::guard([&] { return GetBackgroundWorkerPid(handle, &pid); });
				if (status != BGWH_STARTED && status != BGWH_NOT_YET_STARTED)
					break;
				pg::guard([] { (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION); ResetLatch(MyLatch); });
			}
			throw pg::Interrupted();
		}
		if (while_waiting)
			while_waiting();
		pg::guard([] {
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		});
	}
}

int64_t
allocate_run_id()
{
	pg::SqlValue id =
	    pg::exec_scalar("SELECT nextval(pg_get_serial_sequence('iterable_audience.sync_runs', 'run_id'))");
	return std::stoll(*id);
}

void
fail_stale_runs(int64_t sync_id)
{
	pg::exec("UPDATE iterable_audience.sync_runs SET status = 'failed', finished_at = clock_timestamp(), "
	         "error = 'interrupted: the run ended without finishing (server restart, crash or terminated worker); "
	         "what Iterable acknowledged was kept and the next run converges' "
	         "WHERE sync_id = $1::bigint AND status = 'running'",
	         {std::to_string(sync_id)});
}

}  // namespace ia

using ia::pg::UserError;

namespace {

std::string
running_run_description(int64_t sync_id)
{
	ia::pg::SqlValue run = ia::pg::exec_scalar(
	    "SELECT format('run %s, started at %s', run_id, started_at) FROM iterable_audience.sync_runs "
	    "WHERE sync_id = $1::bigint AND status = 'running' ORDER BY run_id DESC LIMIT 1",
	    {std::to_string(sync_id)});
	return run.value_or("a run");
}

}  // namespace

IA_SQL_FUNCTION(ia_run_sync)
{
	std::optional<std::string> name = ia::pg::arg_text(fcinfo, 0);
	if (!name || name->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "sync_name must not be empty or NULL");
	bool force = ia::pg::arg_bool(fcinfo, 1).value_or(false);
	if (IsolationUsesXactSnapshot())
		throw UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
		                "run_sync() cannot run in a REPEATABLE READ or SERIALIZABLE transaction",
		                "The run commits in its own worker; call run_sync() in READ COMMITTED (the default).");

	ia::pg::SpiSession spi;
	ia::SyncDefinition sync = ia::load_sync(*name);
	ia::check_sync_access(sync);
	ia::check_owner_exists(sync);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());

	ia::RunRequest request;
	memset(&request, 0, sizeof(request));
	request.sync_id = sync.sync_id;
	request.run_id = ia::allocate_run_id();
	request.database_id = MyDatabaseId;
	request.worker_role = ia::pg::extension_owner();
	request.scheduled = 0;
	request.force = force ? 1 : 0;
	ia::capture_settings(request);

	if (!ia::try_lock_sync_for_run(sync.sync_id))
		throw UserError(ERRCODE_LOCK_NOT_AVAILABLE,
		                "sync \"" + sync.name + "\" is already running (" + running_run_description(sync.sync_id) + ")",
		                "One run of a sync at a time: wait for it to end, then run again.");
	ia::unlock_sync_for_run(sync.sync_id);

	BackgroundWorkerHandle *handle = ia::start_run_worker(request, sync.name, true);
	ia::ProgressNotices notices(request.run_id, sync.name);
	ia::wait_for_run_worker(handle, [&] { notices.poll(); });

	ia::pg::guard([&] {
		int rc = SPI_execute(("SELECT * FROM iterable_audience.sync_runs WHERE run_id = " +
		                      std::to_string(request.run_id))
		                         .c_str(),
		                     false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read the run");
	});
	if (SPI_processed == 0) {
		// The worker recorded nothing: another run held the sync, or the worker could not start.
		if (!ia::try_lock_sync_for_run(sync.sync_id))
			throw UserError(ERRCODE_LOCK_NOT_AVAILABLE,
			                "sync \"" + sync.name + "\" is already running (" + running_run_description(sync.sync_id) + ")",
			                "One run of a sync at a time: wait for it to end, then run again.");
		ia::unlock_sync_for_run(sync.sync_id);
		throw UserError(ERRCODE_INTERNAL_ERROR,
		                "the worker of sync \"" + sync.name + "\" exited without recording its run",
		                "See the server log for the worker's error.");
	}
	Datum row = ia::pg::guard([&] { return PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc)); });
	spi.finish();
	PG_RETURN_DATUM(row);
}
