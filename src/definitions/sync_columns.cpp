#include <algorithm>

#include "engine/plan_sql.hpp"
#include "definitions/sync_columns.hpp"

#include "pg/spi.hpp"

namespace ia {

using pg::UserError;

namespace {

size_t
edit_distance(const std::string &a, const std::string &b)
{
	std::vector<size_t> row(b.size() + 1);
	for (size_t j = 0; j <= b.size(); j++)
		row[j] = j;
	for (size_t i = 1; i <= a.size(); i++) {
		size_t diagonal = row[0];
		row[0] = i;
		for (size_t j = 1; j <= b.size(); j++) {
			size_t above = row[j];
			row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
			diagonal = above;
		}
	}
	return row[b.size()];
}

std::vector<std::string>
source_columns(const SyncDefinition &sync)
{
	std::string sql = "SELECT * FROM " + source_from_item(sync.source) + " LIMIT 0";
	pg::guard([&] {
		if (SPI_execute(sql.c_str(), true, 0) < 0)
			elog(ERROR, "could not read the source's columns");
	});
	std::vector<std::string> names;
	TupleDesc desc = SPI_tuptable->tupdesc;
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		if (!attr->attisdropped)
			names.emplace_back(NameStr(attr->attname));
	}
	return names;
}

void
require_column(const std::vector<std::string> &columns, const std::string &column, const std::string &role)
{
	if (std::find(columns.begin(), columns.end(), column) != columns.end())
		return;
	std::string closest;
	size_t best = SIZE_MAX;
	std::string all;
	for (const std::string &c : columns) {
		size_t d = edit_distance(c, column);
		if (d < best) {
			best = d;
			closest = c;
		}
		all += (all.empty() ? "" : ", ") + c;
	}
	std::string hint = best <= std::max<size_t>(2, column.size() / 3) ? "Did you mean \"" + closest + "\"? " : "";
	hint += "The source has these columns: " + (all.empty() ? std::string("(none)") : all) + ".";
	throw UserError(ERRCODE_UNDEFINED_COLUMN, "column \"" + column + "\" (" + role + ") does not exist in the source",
	                hint);
}

}  // namespace

void
check_mapping_rules(const SyncDefinition &sync)
{
	if (sync.email_column && sync.email_column->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "email_column must not be empty");
	if (sync.user_id_column && sync.user_id_column->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "user_id_column must not be empty");
	// preferUserId (user syncs) lets a userId alone identify a user of an email-based project.
	if (sync.project_type == "email" && !sync.email_column && !sync.prefer_user_id)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "account \"" + sync.account_name + "\" is an email-based project: email_column is required",
		                "Name the source column holding email addresses, e.g. email_column => 'email'.");
	if (sync.project_type == "user_id" && !sync.user_id_column)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "account \"" + sync.account_name + "\" is a userID-based project: user_id_column is required",
		                "Name the source column holding userIds, e.g. user_id_column => 'user_id'.");
	if (!sync.email_column && !sync.user_id_column)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "map email_column, user_id_column or both",
		                "A hybrid project identifies users by email, userId or both.");
	if (sync.project_type == "email" && sync.update_existing_users_only)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "update_existing_users_only is not available for email-based projects",
		                "Iterable ignores it there and creates users on subscribe; leave it false for account \"" +
		                    sync.account_name + "\".");
	if (sync.campaign_id && *sync.campaign_id <= 0)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "campaign_id must be a positive Iterable campaign id");
	if (sync.max_removal_fraction < 0 || sync.max_removal_fraction > 1)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "max_removal_fraction must be between 0 and 1",
		                "0.5 blocks a run that would unsubscribe more than half of the list.");
	if (sync.snapshot_retention < 1)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "snapshot_retention must be at least 1",
		                "The newest snapshot is what the next run compares against.");
	if (sync.sync_log_retention_days < 0)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "sync_log_retention_days must not be negative");
}

void
check_columns_exist(const SyncDefinition &sync)
{
	std::vector<std::string> columns = source_columns(sync);
	if (sync.email_column)
		require_column(columns, *sync.email_column, "email_column");
	if (sync.user_id_column)
		require_column(columns, *sync.user_id_column, "user_id_column");
	for (const auto &[field, column] : sync.data_fields)
		require_column(columns, column, "data_fields." + field);
}

}  // namespace ia
