#include "engine/run_progress.hpp"

#include <cmath>

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

namespace {

constexpr std::chrono::seconds kNoticeEvery{5};
constexpr std::chrono::seconds kSampleEvery{1};

// The columns came with version 0.2.0: a database whose extension is not updated yet (ALTER
// EXTENSION iterable_audience UPDATE) still runs its syncs, without progress. Asked once per process
// (a run's worker performs one run).
bool
progress_columns_exist()
{
	static std::optional<bool> exist;
	if (!exist)
		exist = pg::exec_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = "
		                        "'iterable_audience.sync_runs'::regclass AND attname = 'records_planned' "
		                        "AND NOT attisdropped)",
		                        {}, true) == pg::SqlValue("t");
	return *exist;
}

void
update_run(int64_t run_id, const char *assignment, const std::string &value)
{
	pg::in_transaction([&] {
		if (!progress_columns_exist())
			return;
		// Progress only: were it lost in a crash, nothing would depend on it.
		pg::exec_prepared("SET LOCAL synchronous_commit = off");
		pg::exec_prepared(std::string("UPDATE iterable_audience.sync_runs SET ") + assignment +
		                      " WHERE run_id = $1::bigint",
		                  {std::to_string(run_id), value});
	});
}

std::string
duration_text(double seconds)
{
	char text[64];
	if (seconds < 90)
		snprintf(text, sizeof(text), "%.0f s", std::max(1.0, std::round(seconds)));
	else if (seconds < 5400)
		snprintf(text, sizeof(text), "%.0f min", std::round(seconds / 60));
	else
		snprintf(text, sizeof(text), "%.1f h", seconds / 3600);
	return text;
}

}  // namespace

void
record_phase(int64_t run_id, const char *phase)
{
	update_run(run_id, "phase = $2", phase);
}

void
record_planned_records(int64_t run_id, int64_t records)
{
	update_run(run_id, "records_planned = $2::bigint", std::to_string(records));
}

ProgressNotices::ProgressNotices(int64_t run_id, std::string sync_name)
    : run_id_(run_id), sync_name_(std::move(sync_name)), started_(Clock::now()), next_sample_(started_),
      next_notice_(started_ + kNoticeEvery)
{
}

void
ProgressNotices::poll()
{
	Clock::time_point now = Clock::now();
	if (!available_ || now < next_sample_)
		return;
	next_sample_ = now + kSampleEvery;
	bool notice_due = now >= next_notice_;
	if (!notice_due && sending_since_)
		return;  // the rate is measured from the first sample while sending: no need to look now
	if (!checked_view_) {
		checked_view_ = true;
		available_ = pg::exec_scalar("SELECT to_regclass('iterable_audience.sync_progress') IS NOT NULL") ==
		             pg::SqlValue("t");
		if (!available_)
			return;
	}
	// Each statement sees the worker's latest commits (READ COMMITTED: run_sync() refuses the others).
	pg::SqlResult r = pg::exec("SELECT phase, records_planned::text, records_done::text FROM "
	                           "iterable_audience.sync_progress WHERE run_id = $1::bigint",
	                           {std::to_string(run_id_)});
	if (r.empty())
		return;  // not started yet, or just finished
	const std::string phase = r.at(0, 0).value_or("starting");
	const bool has_plan = r.at(0, 1).has_value();  // NULL until the plan is made
	const int64_t planned = has_plan ? std::stoll(*r.at(0, 1)) : 0;
	const int64_t done = r.at(0, 2) ? std::stoll(*r.at(0, 2)) : 0;
	if (phase == "sending" && !sending_since_)
		sending_since_ = Sample{now, done};
	if (!notice_due)
		return;
	while (next_notice_ <= now)
		next_notice_ += kNoticeEvery;

	const double elapsed = std::chrono::duration<double>(now - started_).count();
	std::string text = "sync \"" + sync_name_ + "\", run " + std::to_string(run_id_) + ", " +
	                   duration_text(elapsed) + " in: " + phase;
	if (has_plan) {
		char part[160];
		snprintf(part, sizeof(part), ", %lld of %lld records done", static_cast<long long>(done),
		         static_cast<long long>(planned));
		text += part;
		if (planned > 0) {
			snprintf(part, sizeof(part), " (%.0f%%)", 100.0 * static_cast<double>(done) / static_cast<double>(planned));
			text += part;
		}
		double sending_for =
		    sending_since_ ? std::chrono::duration<double>(now - sending_since_->at).count() : 0.0;
		int64_t sent_since = sending_since_ ? done - sending_since_->done : 0;
		if (phase == "sending" && sending_for > 0 && sent_since > 0) {
			double left = static_cast<double>(std::max<int64_t>(0, planned - done)) * sending_for /
			              static_cast<double>(sent_since);
			text += ", about " + duration_text(left) + " left";
		} else if (phase == "sending") {
			text += ", time left not known yet";
		}
	}
	pg::guard([&] { ereport(NOTICE, (errmsg("%s", text.c_str()))); });
}

}  // namespace ia
