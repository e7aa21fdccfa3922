// A run's phases in order (sync_run.hpp); each phase is in its own file (run.hpp).
#include "engine/run.hpp"
#include "engine/run_progress.hpp"
#include "engine/source_changes.hpp"
#include "engine/snapshot_tables.hpp"
#include "engine/sync_run.hpp"

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "pgstat.h"
}

namespace ia {

namespace {

std::string
run_status_for(int64_t failed)
{
	return failed > 0 ? "succeeded_with_failures" : "succeeded";
}

// Records a run that ended early, even while a terminate request is pending.
void
record_ended_run(int64_t run_id, const RunEnded &ended)
{
	HOLD_INTERRUPTS();
	try {
		pg::in_transaction([&] {
			pg::exec("UPDATE iterable_audience.sync_runs SET status = $2, finished_at = clock_timestamp(), error = $3 "
			         "WHERE run_id = $1::bigint AND status = 'running'",
			         {std::to_string(run_id), ended.status, ended.error});
		});
	} catch (const std::exception &e) {
		std::string message = e.what();
		RESUME_INTERRUPTS();
		pg::guard([&] { ereport(WARNING, (errmsg("iterable_audience: could not record the end of run %lld: %s", static_cast<long long>(run_id), message.c_str()))); });
		return;
	}
	RESUME_INTERRUPTS();
}

}  // namespace

std::string
Run::run_label() const
{
	return "run " + std::to_string(request_.run_id) + " of sync \"" + sync_.name + "\"";
}

void
Run::report(const std::string &what)
{
	sample_private_memory();
	std::string text = "iterable_audience: " + run_label() + ": " + what;
	pg::guard([&] { pgstat_report_activity(STATE_RUNNING, text.c_str()); });
}

void
Run::perform()
{
	if (!claim())
		return;  // another run of this sync holds it; the caller reports that
	if (kind_->planning() == SyncKind::Planning::PastCursor) {
		perform_cursor_run();
		return;
	}
	timed("settle", [&] { settle_earlier_runs(); });
	if (!request_.force) {
		// Nothing changed since the last run sent everything: done without reading the source.
		std::optional<int64_t> idle;
		timed("idle check", [&] {
			idle = pg::in_transaction([&] {
				std::optional<int64_t> read_by = idle_since_run(sync_);
				if (read_by) {
					previous_snapshot_ = latest_snapshot_table(sync_.sync_id);
					record_idle_run(request_.run_id, *read_by);
				}
				return read_by;
			});
		});
		if (idle) {
			timed("finish", [&] { finish("succeeded", ""); });
			pg::guard([&] {
				ereport(LOG, (errmsg("iterable_audience: %s: idle, the source has not changed since run %lld read it",
				                     run_label().c_str(), static_cast<long long>(*idle))));
			});
			prune_source_changes();
			log_phases();
			return;
		}
	}
	record_phase(request_.run_id, "planning");
	try {
		timed("plan", [&] { plan(); });
	} catch (const pg::PgError &e) {
		throw RunEnded{"failed", "could not read the audience source: " + e.message +
		                             "; nothing was sent and no one was unsubscribed. Fix the source or change it with "
		                             "iterable_audience.alter_sync('" + sync_.name + "', source => ...)"};
	} catch (const pg::UserError &e) {
		throw RunEnded{"failed", std::string(e.what()) + "; nothing was sent and no one was unsubscribed" +
		                             (e.hint.empty() ? std::string() : ". " + e.hint)};
	}
	record_planned_records(request_.run_id, planned_total() + refused_);
	check_removal_guard();
	record_refused();
	std::optional<RunEnded> ended;
	if (planned_total() > 0) {
		record_phase(request_.run_id, "preflight");
		timed("preflight", [&] {
			report("checking before sending");
			kind_->preflight(sync_, account_, request_.run_id);
		});
		pg::in_transaction([&] { create_snapshot_shell(sync_.sync_id, sync_.name, request_.run_id, sync_.owner); });
		record_phase(request_.run_id, "sending");
		try {
			timed("send", [&] { send(); });
		} catch (const RunEnded &e) {
			ended = e;  // Iterable refused the run during the send: what it acknowledged is recorded
		}
	}
	record_phase(request_.run_id, "finishing");
	timed("finish", [&] { finish(ended ? ended->status : run_status_for(failed_), ended ? ended->error : ""); });
	if (!ended)
		timed("retention", [&] { retention(); });
	log_phases();
}

const char *const kRunInterruptedError =
    "interrupted: the run was cancelled or the server is shutting down; records Iterable acknowledged so far are "
    "kept and the next run converges";

void
perform_run(const RunRequest &request)
{
	std::optional<RunEnded> ended;
	Run run(request);
	try {
		run.perform();
	} catch (const RunEnded &e) {
		ended = e;
	} catch (const pg::Interrupted &) {
		ended = RunEnded{"failed", kRunInterruptedError};
		run.settle_after_interrupt();
	} catch (const pg::PgError &e) {
		ended = RunEnded{"failed", e.message};
	} catch (const pg::UserError &e) {
		ended = RunEnded{"failed", e.what()};
	} catch (const std::exception &e) {
		ended = RunEnded{"failed", std::string("internal error: ") + e.what()};
	}
	if (ended)
		record_ended_run(request.run_id, *ended);
}

}  // namespace ia
