// The last phases of a run: its final status and snapshot, retention, and what an interrupt leaves.
#include "engine/run.hpp"
#include "engine/snapshot_tables.hpp"
#include "engine/source_changes.hpp"
#include "definitions/sync_schedule.hpp"

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

void
Run::finish(const std::string &status, const std::string &error)
{
	std::string text = error;
	for (const std::string &note : notes_)
		text += (text.empty() ? "" : "; ") + note;
	pg::in_transaction([&] {
		if (sent_any_) {
			report("recording the snapshot");
			fill_run_snapshot(sync_.sync_id, sync_.name, request_.run_id, sync_.owner, previous_snapshot_);
		}
		pg::exec("UPDATE iterable_audience.sync_runs SET status = $2, finished_at = clock_timestamp(), "
		         "error = nullif($3, ''), snapshot_table = coalesce(snapshot_table, $4), settled = true "
		         "WHERE run_id = $1::bigint",
		         {std::to_string(request_.run_id), status, text, previous_snapshot_});
		bool completed = status == "succeeded" || status == "succeeded_with_failures";
		if (read_source_)
			record_source_read(sync_, request_.run_id, completed && failed_ == refused_);
		std::optional<std::string> next = next_run_at_text(sync_.schedule);
		pg::exec("UPDATE iterable_audience.sync SET reset_pending = reset_pending AND NOT $2::boolean, "
		         "next_run_at = CASE WHEN paused THEN NULL ELSE to_timestamp($3::double precision) END "
		         "WHERE sync_id = $1::bigint",
		         {std::to_string(sync_.sync_id), completed ? "true" : "false", next});
	});
}

void
Run::retention()
{
	// A separate transaction with a lock timeout: a snapshot table someone is reading must not stall
	// the run; it is dropped at a later run instead.
	try {
		pg::in_transaction([&] {
			pg::exec("SET LOCAL lock_timeout = '5s'");
			// Never this run's own logs (with 0 days they would be gone as soon as written), nor the
			// batches of a run not yet settled into a snapshot (snapshot_tables.hpp).
			pg::exec("DELETE FROM iterable_audience.sync_batch WHERE sync_id = $1::bigint AND run_id <> $3::bigint "
			         "AND coalesce(answered_at, created_at) < now() - make_interval(days => $2::integer) "
			         "AND (kind = 'refused' OR EXISTS (SELECT 1 FROM iterable_audience.sync_runs r "
			         "WHERE r.run_id = sync_batch.run_id AND r.settled))",
			         {std::to_string(sync_.sync_id), std::to_string(sync_.sync_log_retention_days),
			          std::to_string(request_.run_id)});
			drop_snapshot_tables(sync_.sync_id, sync_.snapshot_retention);
			// Failures of records that left both the audience and the snapshot are moot. A record of
			// the audience with a remembered failure is always in the plan (sent again, skipped or refused).
			if (failures_possible_ || refused_ > 0) {
				std::string snapshot = latest_snapshot_table(sync_.sync_id).value_or("");
				pg::exec(("DELETE FROM iterable_audience.record_failure f WHERE f.sync_id = " +
				          std::to_string(sync_.sync_id) +
				          " AND NOT EXISTS (SELECT 1 FROM " + std::string(kPlanTable) +
				          " p WHERE p.record_key = f.record_key)" +
				          (snapshot.empty() ? std::string()
				                            : " AND NOT EXISTS (SELECT 1 FROM " + snapshot +
				                                  " s WHERE s.record_key = f.record_key)"))
				             .c_str());
			}
		});
	} catch (const pg::PgError &e) {
		std::string message = e.message;
		pg::guard([&] { ereport(WARNING, (errmsg("iterable_audience: retention after %s skipped: %s", run_label().c_str(), message.c_str()))); });
	}
	prune_source_changes();
}

// Interrupted (cancel, SIGTERM) while sending: builds the run's snapshot now, with the batches in
// flight in doubt, rather than leave it to the next run, so that what analysts read is current. If
// even that fails, the next run settles the run (snapshot_tables.hpp).
void
Run::settle_after_interrupt()
{
	if (!sent_any_)
		return;
	HOLD_INTERRUPTS();
	try {  // send() aborted the requests in flight before the interrupt reached here
		pg::in_transaction(
		    [&] { fill_run_snapshot(sync_.sync_id, sync_.name, request_.run_id, sync_.owner, previous_snapshot_); });
	} catch (const std::exception &e) {
		std::string message = e.what();
		RESUME_INTERRUPTS();
		pg::guard([&] { ereport(WARNING, (errmsg("iterable_audience: %s: the next run records its snapshot: %s", run_label().c_str(), message.c_str()))); });
		return;
	}
	RESUME_INTERRUPTS();
}

// One LOG line with the time of each phase ("plan" includes "diff", which reads the audience).
void
Run::log_phases()
{
	std::string text;
	char part[64];
	for (const auto &[phase, seconds] : phases_) {
		snprintf(part, sizeof(part), "%s%s %.3f s", text.empty() ? "" : ", ", phase, seconds);
		text += part;
	}
	pg::guard([&] {
		ereport(LOG, (errmsg("iterable_audience: run %lld phases: %s", static_cast<long long>(request_.run_id),
		                     text.c_str())));
	});
}

}  // namespace ia
