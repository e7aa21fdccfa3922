// Phase 1 of a run: claim the sync, and settle earlier runs that ended before their snapshot.
#include "engine/run.hpp"
#include "engine/run_launcher.hpp"
#include "engine/snapshot_tables.hpp"
#include "engine/sync_lock.hpp"

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

bool
Run::claim()
{
	return pg::in_transaction([&] {
		if (!try_lock_sync_for_run(request_.sync_id))
			return false;
		// Holding the lock, any other 'running' run of this sync is a leftover of a crash.
		fail_stale_runs(request_.sync_id);
		sync_ = load_sync_by_id(request_.sync_id);
		if (request_.scheduled && sync_.paused) {
			// Paused after the scheduler started this worker: a paused sync is not scheduled, so
			// nothing runs and nothing is recorded (run_sync() still runs a paused sync).
			unlock_sync_for_run(request_.sync_id);
			pg::guard([&] {
				ereport(LOG, (errmsg("iterable_audience: sync \"%s\" was paused after its run %lld was scheduled; "
				                     "the run does not start",
				                     sync_.name.c_str(), static_cast<long long>(request_.run_id))));
			});
			return false;
		}
		kind_ = &sync_kind(sync_.kind);
		planned_.assign(kind_->operations().size(), 0);
		account_ = load_account(sync_.account_name, true);
		std::vector<pg::SqlValue> values = {std::to_string(request_.run_id), std::to_string(sync_.sync_id), sync_.name,
		                                    request_.scheduled ? "schedule" : "manual", request_.force ? "true" : "false"};
		// Until ALTER EXTENSION ... UPDATE to 0.2.0, sync_runs has no kind (and every sync is a list).
		const bool kinds = sync_kinds_installed();
		if (kinds)
			values.emplace_back(sync_.kind);
		pg::exec((std::string("INSERT INTO iterable_audience.sync_runs (run_id, sync_id, sync_name, trigger, status, "
		                      "forced") + (kinds ? ", kind" : "") +
		          ") OVERRIDING SYSTEM VALUE VALUES ($1::bigint, $2::bigint, $3, $4, 'running', $5::boolean" +
		          (kinds ? ", $6" : "") + ")")
		             .c_str(),
		         values);
		std::string app = "iterable_audience sync " + sync_.name;
		pg::guard([&] { SetConfigOption("application_name", app.c_str(), PGC_USERSET, PGC_S_SESSION); });
		return true;
	});
}

// Builds the snapshots of earlier runs that ended before building theirs (a crash, an interrupt):
// the plan must start from what those runs may have applied.
void
Run::settle_earlier_runs()
{
	pg::in_transaction([&] {
		// Snapshot tables a pg_upgrade (or a restore without triggers) left untied from the extension.
		tie_registered_snapshot_tables(sync_.sync_id);
		for (int64_t run : unsettled_runs(sync_.sync_id)) {
			report("settling run " + std::to_string(run) + ", which ended before recording its snapshot");
			fill_run_snapshot(sync_.sync_id, sync_.name, run, sync_.owner, latest_snapshot_table(sync_.sync_id));
		}
	});
}

}  // namespace ia
