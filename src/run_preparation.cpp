#include "plan_sql.hpp"
#include "run_preparation.hpp"
#include "sync_columns.hpp"

#include "pg/guc_scope.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

namespace ia {

void
check_owner_exists(const SyncDefinition &sync)
{
	Oid owner = sync.owner;
	bool exists = pg::guard([&] { return OidIsValid(owner) && GetUserNameFromId(owner, true) != nullptr; });
	if (!exists)
		throw pg::UserError(ERRCODE_UNDEFINED_OBJECT,
		                    "the role that owned sync \"" + sync.name + "\" no longer exists",
		                    "A sync reads its source with its owner's rights. Drop the sync with "
		                    "iterable_audience.drop_sync() and create it again as another role.");
}

int64_t
stage_audience(const SyncDefinition &sync, const std::string &table)
{
	check_owner_exists(sync);
	std::string sql = "CREATE TEMP TABLE " + table + " AS " + audience_sql(sync);
	pg::SqlResult r;
	{
		pg::AsRole as_owner(sync.owner);
		pg::GucScope scope;
		scope.set("search_path", sync.search_path);
		// A column renamed or dropped since create_sync: name the mapping and the closest column
		// rather than fail on the generated SQL.
		check_columns_exist(sync);
		r = pg::exec(sql.c_str());
	}
	return static_cast<int64_t>(r.processed);
}

std::string
staged_plan_sql(const SyncDefinition &sync, const std::string &audience_table)
{
	return plan_sql(sync, audience_table, latest_snapshot_table(sync.sync_id));
}

}  // namespace ia
