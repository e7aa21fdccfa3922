// Entry point of the background worker that performs one run (started by run_sync() or the
// scheduler). Plain PostgreSQL style at this level; the run itself is C++ behind perform_run(),
// which never throws.
#include <sys/resource.h>

#include "run_request.hpp"
#include "sync_run.hpp"

#include "pg/guard.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
}

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
	ia::apply_settings(request);
	pgstat_report_activity(STATE_RUNNING, "iterable_audience: starting a run");

	ia::perform_run(request);

	// What the run cost this process: for operators sizing machines, and read by bench/.
	struct rusage usage;
	if (getrusage(RUSAGE_SELF, &usage) == 0)
		ereport(LOG, (errmsg("iterable_audience: run %lld used %.3f s user CPU, %.3f s system CPU, peak RSS %ld kB",
		                     static_cast<long long>(request.run_id),
		                     usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
		                     usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6, usage.ru_maxrss)));
	pgstat_report_activity(STATE_IDLE, nullptr);
	proc_exit(0);
}
}
