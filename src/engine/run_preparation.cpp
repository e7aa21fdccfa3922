#include "engine/sync_kind.hpp"
#include "engine/plan_sql.hpp"
#include "engine/run_preparation.hpp"
#include "settings.hpp"
#include "definitions/sync_columns.hpp"

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

void
build_plan(const SyncDefinition &sync, const std::string &table, const std::optional<std::string> &baseline,
           int64_t baseline_rows, bool failures_possible)
{
	std::string sql = "CREATE TEMP TABLE " + table + " AS " + plan_sql(sync, baseline, baseline ? baseline_rows : 0);
	{
		pg::AsRole as_owner(sync.owner);
		pg::GucScope scope;
		scope.set("search_path", sync.search_path);
		// The plan's estimates of CTE scans are guesses: with them the planner may sort both sides of a
		// million-row FULL JOIN to merge them, where hashing is much cheaper; and compiling the query
		// (JIT) costs more than it saves here.
		scope.set("enable_mergejoin", "off");
		scope.set("jit", "off");
		// Bounded memory whatever the audience's size: beyond it, hash tables spill to disk. Hash
		// tables get twice work_mem, whatever the server's hash_mem_multiplier: they gain most from
		// memory, the audience's tuplestore (which reads back from disk cheaply) the least. With the
		// default 24MB, a run's worker stays under 128 MB at 1M and 10M rows (bench/RESULTS.md).
		if (settings::plan_work_mem_kb > 0) {
			scope.set("work_mem", (std::to_string(settings::plan_work_mem_kb) + "kB").c_str());
			scope.set("hash_mem_multiplier", "2");
		}
		// A column renamed or dropped since create_sync: name the mapping and the closest column
		// rather than fail on the generated SQL.
		check_columns_exist(sync);
		pg::exec(sql.c_str());
	}
	pg::AsRole as_extension_owner(pg::extension_owner());
	for (const SendOperation &op : sync_kind(sync.kind).operations())
		if (op.limits.max_body_bytes > 0)
			pg::exec(refuse_oversized_sql(op, table).c_str());
	if (failures_possible)
		pg::exec(skip_remembered_failures_sql(sync, table).c_str());
}

}  // namespace ia
