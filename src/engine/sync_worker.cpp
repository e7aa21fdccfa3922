// Entry point of the background worker that performs one run (started by run_sync() or the
// scheduler). Plain PostgreSQL style at this level; the run itself is C++ behind perform_run(),
// which never throws.
#include <sys/resource.h>

#include "engine/memory_usage.hpp"
#include "engine/run_request.hpp"
#include "engine/sync_run.hpp"

#include "pg/guard.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/snapmgr.h"
}

namespace {

bool run_over = false;  // perform_run() returned: the run row holds its final state

// A terminate request that arrives while the run executes SQL (reading the audience, recording a
// batch) ends the worker with FATAL, which perform_run() never sees: record the run as interrupted
// on the way out, so that it does not stay 'running' until the next run of the sync.
void
record_unfinished_run(int code, Datum arg)
{
	if (run_over)
		return;
	AbortOutOfAnyTransaction();  // also leaves any role the run had switched to
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	Oid types[2] = {INT8OID, TEXTOID};
	Datum values[2] = {arg, CStringGetTextDatum(ia::kRunInterruptedError)};
	SPI_execute_with_args("UPDATE iterable_audience.sync_runs SET status = 'failed', finished_at = clock_timestamp(), "
	                      "error = $2 WHERE run_id = $1 AND status = 'running'",
	                      2, types, values, nullptr, false, 0);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

}  // namespace

extern "C" {

PGDLLEXPORT void ia_sync_worker_main(Datum main_arg);

void
ia_sync_worker_main(Datum)
{
	ia::RunRequest request;
	memcpy(&request, MyBgworkerEntry->bgw_extra, sizeof(request));

	// die() defers SIGTERM to the next interrupt check: the run notices it within 100 ms, records
	// itself as interrupted, and exits.
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(request.database_id, request.worker_role, 0);
	// Registered after the connection's own cleanup, so it runs first, still connected.
	before_shmem_exit(record_unfinished_run, Int64GetDatum(request.run_id));
	ia::apply_settings(request);
	pgstat_report_activity(STATE_RUNNING, "iterable_audience: starting a run");

	ia::perform_run(request);
	run_over = true;

	// What the run cost this process: for operators sizing machines, and read by bench/.
	struct rusage usage;
	if (getrusage(RUSAGE_SELF, &usage) == 0)
		ereport(LOG, (errmsg("iterable_audience: run %lld used %.3f s user CPU, %.3f s system CPU, peak RSS %ld kB "
		                     "(shared buffers included), private memory %ld kB at most at the end of a phase",
		                     static_cast<long long>(request.run_id),
		                     usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
		                     usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6, usage.ru_maxrss,
		                     ia::peak_private_memory_kb())));
	pgstat_report_activity(STATE_IDLE, nullptr);
	proc_exit(0);
}
}
