// Phase 2 of a run: read the audience as the sync's owner and plan against the latest snapshot
// (plan_sql.hpp); count the plan per operation of the kind; the removal guard; the refused rows.
#include "engine/run.hpp"
#include "engine/source_changes.hpp"
#include "engine/run_preparation.hpp"
#include "engine/snapshot_tables.hpp"

#include "pg/roles.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

const char *const kPlanTable = "pg_temp.ia_plan";

int64_t
Run::planned(const SendOperation &op) const
{
	const std::vector<SendOperation> &ops = kind_->operations();
	for (size_t i = 0; i < ops.size(); i++)
		if (&ops[i] == &op)
			return planned_[i];
	return 0;
}

int64_t
Run::planned_total() const
{
	int64_t total = 0;
	for (int64_t n : planned_)
		total += n;
	return total;
}

void
Run::plan()
{
	report("reading the audience");
	prepare_source_read(sync_, request_.run_id);
	read_source_ = true;
	pg::in_transaction([&] {
		check_owner_exists(sync_);
		if (!account_usable_by(account_, sync_.owner))
			throw pg::UserError(ERRCODE_INSUFFICIENT_PRIVILEGE,
			                    "the owner of sync \"" + sync_.name + "\" (" + pg::role_name(sync_.owner) +
			                        ") may no longer use account \"" + account_.name + "\"",
			                    "Grant it again with iterable_audience.grant_account_usage('" + account_.name +
			                        "', '" + pg::role_name(sync_.owner) + "').");
		previous_snapshot_ = latest_snapshot_table(sync_.sync_id);
		list_size_ = latest_snapshot_rows(sync_.sync_id);
		failures_possible_ = pg::exec_scalar("SELECT EXISTS (SELECT 1 FROM iterable_audience.record_failure "
		                                     "WHERE sync_id = $1::bigint)",
		                                     {std::to_string(sync_.sync_id)}, true) == pg::SqlValue("t");
		timed("diff", [&] { build_plan(sync_, kPlanTable, previous_snapshot_, list_size_, failures_possible_); });
		const std::vector<SendOperation> &ops = kind_->operations();
		std::string counts = "SELECT count(*) FILTER (WHERE batch_class = " + std::to_string(batch_class::kRefused) +
		                     "), "
		                     // The audience's size without reading it again: the snapshot, minus records that
		                     // left it, plus those that joined it, plus the rows refused.
		                     "count(*) FILTER (WHERE valid AND batch_class IN (1, 3) AND prev_hash IS NULL) "
		                     "- count(*) FILTER (WHERE valid AND operation = 'delete') + count(*) FILTER (WHERE NOT valid)";
		for (const SendOperation &op : ops)
			counts += ", count(*) FILTER (WHERE batch_class = " + std::to_string(op.batch_class) + ")";
		pg::SqlResult r = pg::exec((counts + " FROM " + kPlanTable).c_str());
		refused_ = std::stoll(*r.at(0, 0));
		int64_t audience_rows = list_size_ + std::stoll(*r.at(0, 1));
		std::string update = "UPDATE iterable_audience.sync_runs SET audience_rows = $2::bigint";
		std::vector<pg::SqlValue> values = {std::to_string(request_.run_id), std::to_string(audience_rows)};
		for (size_t i = 0; i < ops.size(); i++) {
			planned_[i] = std::stoll(*r.at(0, 2 + i));
			if (ops[i].planned_column) {
				values.emplace_back(std::to_string(planned_[i]));
				update += std::string(", ") + ops[i].planned_column + " = $" + std::to_string(values.size()) + "::bigint";
			}
		}
		pg::exec((update + " WHERE run_id = $1::bigint").c_str(), values);
	});
}

void
Run::check_removal_guard()
{
	int64_t removals = 0;
	for (const SendOperation &op : kind_->operations())
		if (op.removes)
			removals += planned(op);
	if (request_.force || removals == 0 || list_size_ == 0)
		return;
	double fraction = static_cast<double>(removals) / static_cast<double>(list_size_);
	if (fraction <= sync_.max_removal_fraction)
		return;
	char text[512];
	snprintf(text, sizeof(text),
	         "blocked by the removal guard: this run would unsubscribe %lld of the list's %lld members (%.1f%%), "
	         "more than max_removal_fraction (%.1f%%); nothing was sent. If the audience really shrank, send it "
	         "with iterable_audience.run_sync('%s', force => true)",
	         static_cast<long long>(removals), static_cast<long long>(list_size_), fraction * 100,
	         sync_.max_removal_fraction * 100, sync_.name.c_str());
	throw RunEnded{"blocked", text};
}

void
Run::record_refused()
{
	target_ = RunTarget{request_.run_id, sync_.sync_id, kPlanTable, sync_.retain_sync_logs, failures_possible_,
	                    kind_->send_action()};
	pg::in_transaction([&] {
		int64_t refused = record_refused_rows(target_);
		failed_ += refused;
		target_.failures_possible = target_.failures_possible || refused > 0;  // refused rows are remembered
	});
}

}  // namespace ia
