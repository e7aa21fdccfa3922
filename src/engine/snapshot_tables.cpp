#include "engine/snapshot_tables.hpp"

#include "pg/bulk_insert.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
}

namespace ia {

namespace {

// Readable name for analysts, unique by the run id: "<sync name>_run_<run id>" (within 63 bytes).
std::string
snapshot_table_name(const std::string &sync_name, int64_t run_id)
{
	std::string suffix = "_run_" + std::to_string(run_id);
	std::string table = sync_name.substr(0, 63 - suffix.size());
	while (!table.empty() && (static_cast<unsigned char>(table.back()) & 0xC0) == 0x80)
		table.pop_back();  // do not cut a UTF-8 character in half
	if (!table.empty() && (static_cast<unsigned char>(table.back()) & 0x80))
		table.pop_back();
	return table + suffix;
}

// Ledger actions after which a record is off the snapshot once applied (a list's unsubscribe; a
// user sync's record that left the source), and those that put their values in it.
const std::string kRemovingActions = "('unsubscribe', 'forget')";
const std::string kSendingActions = "('subscribe', 'update_user')";

}  // namespace

std::string
settled_snapshot_sql(const std::optional<std::string> &previous, int64_t run_id)
{
	const std::string run = std::to_string(run_id);
	const std::string doubt = std::to_string(kInDoubtHash);
	// l.state: 'applied' (Iterable accepted it), 'failed' (refused, surely not applied), 'doubt'.
	const std::string sent =
	    "(SELECT u.record_key, u.email, u.user_id, u.row_hash, b.action, coalesce(b.answered_at, b.created_at) AS at, "
	    "CASE WHEN b.answered_at IS NULL THEN 'doubt' WHEN u.error_code IS NULL THEN 'applied' "
	    "WHEN b.outcome_unknown THEN 'doubt' ELSE 'failed' END AS state "
	    "FROM iterable_audience.sync_batch b CROSS JOIN LATERAL unnest(b.record_keys, b.emails, b.user_ids, "
	    "b.row_hashes, b.error_codes) AS u(record_key, email, user_id, row_hash, error_code) "
	    "WHERE b.run_id = " + run + " AND b.kind = 'sent')";
	if (!previous)
		// The first snapshot: only what this run's batches applied, or may have (no join needed).
		return "SELECT l.record_key, l.email, l.user_id, CASE WHEN l.state = 'doubt' THEN " + doubt +
		       "::bigint ELSE l.row_hash END AS row_hash, l.at AS synced_at, " + run + "::bigint AS run_id FROM " +
		       sent + " l WHERE l.state <> 'failed' AND NOT (l.state = 'applied' AND l.action IN " + kRemovingActions + ")";
	const std::string keep_prev = "(l.record_key IS NULL OR l.state = 'failed')";
	return "SELECT coalesce(l.record_key, p.record_key) AS record_key, "
	       "CASE WHEN " + keep_prev + " THEN p.email WHEN l.action IN " + kSendingActions + " THEN l.email "
	       "ELSE coalesce(p.email, l.email) END AS email, "
	       "CASE WHEN " + keep_prev + " THEN p.user_id WHEN l.action IN " + kSendingActions + " THEN l.user_id "
	       "ELSE coalesce(p.user_id, l.user_id) END AS user_id, "
	       "CASE WHEN " + keep_prev + " THEN p.row_hash WHEN l.state = 'doubt' THEN " + doubt +
	       "::bigint ELSE l.row_hash END AS row_hash, "
	       "CASE WHEN " + keep_prev + " THEN p.synced_at ELSE l.at END AS synced_at, "
	       "CASE WHEN " + keep_prev + " THEN p.run_id ELSE " + run + "::bigint END AS run_id "
	       "FROM " + *previous + " p FULL JOIN " + sent + " l ON l.record_key = p.record_key "
	       "WHERE NOT (l.record_key IS NOT NULL AND ((l.state = 'applied' AND l.action IN " + kRemovingActions + ") OR "
	       "(l.state = 'failed' AND p.record_key IS NULL)))";
}

bool
tie_snapshot_table(const std::string &table_name)
{
	// Untied: no dependency of any kind on the extension (a member of 0.1.0 has one, deptype 'e').
	pg::SqlResult r = pg::exec(
	    "SELECT c.oid::text, e.oid::text FROM pg_catalog.pg_class c "
	    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	    "CROSS JOIN pg_catalog.pg_extension e "
	    "WHERE n.nspname = 'iterable_audience_snapshots' AND c.relname = $1 AND c.relkind = 'r' "
	    "AND e.extname = 'iterable_audience' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d "
	    "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.objsubid = 0 "
	    "AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = e.oid)",
	    {table_name});
	if (r.empty())
		return false;
	Oid relid = static_cast<Oid>(std::stoul(*r.at(0, 0)));
	Oid extension = static_cast<Oid>(std::stoul(*r.at(0, 1)));
	pg::guard([&] {
		// The lock ALTER EXTENSION ADD takes: conflicts with DROP EXTENSION, as membership did.
		LockDatabaseObject(ExtensionRelationId, extension, 0, ShareUpdateExclusiveLock);
		ObjectAddress table{RelationRelationId, relid, 0};
		ObjectAddress owner{ExtensionRelationId, extension, 0};
		recordDependencyOn(&table, &owner, DEPENDENCY_AUTO_EXTENSION);
		CommandCounterIncrement();
	});
	return true;
}

int
tie_registered_snapshot_tables(std::optional<int64_t> sync_id)
{
	pg::SqlResult r = pg::exec(
	    "SELECT table_name FROM iterable_audience.snapshot WHERE $1::bigint IS NULL OR sync_id = $1::bigint",
	    {sync_id ? pg::SqlValue(std::to_string(*sync_id)) : pg::SqlValue()});
	int tied = 0;
	for (const pg::SqlRow &row : r.rows)
		tied += tie_snapshot_table(*row[0]) ? 1 : 0;
	return tied;
}

std::string
create_snapshot_shell(int64_t sync_id, const std::string &sync_name, int64_t run_id, unsigned int sync_owner)
{
	std::string table = snapshot_table_name(sync_name, run_id);
	std::string qualified = "iterable_audience_snapshots." + pg::quote_identifier(table);
	pg::exec(("CREATE TABLE " + qualified +
	          " (record_key text NOT NULL, email text, user_id text, row_hash bigint NOT NULL, "
	          "synced_at timestamptz NOT NULL, run_id bigint NOT NULL)")
	             .c_str());
	tie_snapshot_table(table);
	pg::exec(("COMMENT ON TABLE " + qualified + " IS " +
	          pg::quote_literal("Members of the Iterable list of sync \"" + sync_name +
	                            "\" as Iterable acknowledged them, after run " + std::to_string(run_id) +
	                            " (row_hash 0: in doubt, sent again by the next run)"))
	             .c_str());
	std::string owner = pg::role_name(sync_owner);
	if (owner.rfind("(dropped role", 0) != 0)
		pg::exec(("GRANT SELECT ON " + qualified + " TO " + pg::quote_identifier(owner)).c_str());
	pg::exec("INSERT INTO iterable_audience.snapshot (sync_id, run_id, table_name) VALUES ($1::bigint, $2::bigint, $3)",
	         {std::to_string(sync_id), std::to_string(run_id), table});
	return qualified;
}

std::string
fill_run_snapshot(int64_t sync_id, const std::string &sync_name, int64_t run_id, unsigned int sync_owner,
                  const std::optional<std::string> &previous)
{
	pg::SqlValue table = pg::exec_scalar(
	    "SELECT table_name FROM iterable_audience.snapshot WHERE sync_id = $1::bigint AND run_id = $2::bigint "
	    "AND NOT filled AND to_regclass(format('iterable_audience_snapshots.%I', table_name)) IS NOT NULL",
	    {std::to_string(sync_id), std::to_string(run_id)}, true);
	std::string qualified = table ? "iterable_audience_snapshots." + pg::quote_identifier(*table)
	                              : create_snapshot_shell(sync_id, sync_name, run_id, sync_owner);
	pg::SqlValue oid = pg::exec_scalar("SELECT $1::regclass::oid", {qualified});
	uint64_t rows = pg::insert_query_rows(static_cast<unsigned int>(std::stoul(*oid)), settled_snapshot_sql(previous, run_id));
	pg::exec("UPDATE iterable_audience.snapshot SET filled = true, row_count = $3::bigint, created_at = now() "
	         "WHERE sync_id = $1::bigint AND run_id = $2::bigint",
	         {std::to_string(sync_id), std::to_string(run_id), std::to_string(rows)});
	pg::exec("UPDATE iterable_audience.sync_runs SET snapshot_table = $2, settled = true WHERE run_id = $1::bigint",
	         {std::to_string(run_id), qualified});
	// Batches kept only as the ledger (the sync keeps no logs) have served their purpose.
	pg::exec("DELETE FROM iterable_audience.sync_batch WHERE run_id = $1::bigint AND NOT logged",
	         {std::to_string(run_id)});
	return qualified;
}

std::vector<int64_t>
unsettled_runs(int64_t sync_id)
{
	pg::SqlResult r = pg::exec(
	    "SELECT r.run_id FROM iterable_audience.sync_runs r WHERE r.sync_id = $1::bigint AND NOT r.settled "
	    "AND r.status <> 'running' AND EXISTS (SELECT 1 FROM iterable_audience.sync_batch b "
	    "WHERE b.run_id = r.run_id AND b.kind = 'sent') ORDER BY 1",
	    {std::to_string(sync_id)});
	std::vector<int64_t> runs;
	for (const pg::SqlRow &row : r.rows)
		runs.push_back(std::stoll(*row[0]));
	return runs;
}

int64_t
latest_snapshot_rows(int64_t sync_id)
{
	pg::SqlValue n = pg::exec_scalar("SELECT row_count FROM iterable_audience.snapshot WHERE sync_id = $1::bigint "
	                                 "AND filled ORDER BY run_id DESC LIMIT 1",
	                                 {std::to_string(sync_id)}, true);
	return n ? std::stoll(*n) : 0;
}

void
drop_snapshot_tables(int64_t sync_id, int keep)
{
	pg::SqlResult old = pg::exec(
	    "SELECT run_id, table_name FROM iterable_audience.snapshot WHERE sync_id = $1::bigint "
	    "ORDER BY run_id DESC OFFSET $2::integer",
	    {std::to_string(sync_id), std::to_string(keep)});
	for (const pg::SqlRow &row : old.rows) {
		std::string qualified = "iterable_audience_snapshots." + pg::quote_identifier(*row[1]);
		pg::SqlValue exists = pg::exec_scalar("SELECT to_regclass($1) IS NOT NULL", {qualified});
		if (exists && *exists == "t")
			pg::exec(("DROP TABLE " + qualified).c_str());
		pg::exec("DELETE FROM iterable_audience.snapshot WHERE sync_id = $1::bigint AND run_id = $2::bigint",
		         {std::to_string(sync_id), *row[0]});
	}
}

}  // namespace ia
