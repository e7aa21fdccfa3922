// SQL API: check_list() and repair_list() (issue 19, drift check). check_list reads the list's members
// back from Iterable (GET /api/lists/getUsers) and compares them with the sync's latest snapshot: the
// list as the sync believes Iterable has it (docs/architecture.md, "Run ledger and snapshots").
// repair_list makes no request of its own beyond that read: it marks records in the latest snapshot
// table as in doubt (row_hash 0), which the next run resends as the audience says (plan_sql.cpp: a
// snapshot row whose hash matches no audience row is subscribed again when the audience has it and
// unsubscribed when it does not). The engine is unchanged.
#include "core/list_members.hpp"
#include "definitions/account_store.hpp"
#include "definitions/sync_definition.hpp"
#include "engine/run_launcher.hpp"
#include "engine/run_preparation.hpp"
#include "engine/snapshot_tables.hpp"
#include "engine/source_changes.hpp"
#include "engine/sync_lock.hpp"
#include "iterable/list_read.hpp"

#include "pg/args.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

using ia::pg::SqlValue;
using ia::pg::UserError;

namespace {

constexpr size_t kInsertChunk = 10000;  // members per INSERT of the list's read-back

std::string
require_sync_name(FunctionCallInfo fcinfo)
{
	std::optional<std::string> name = ia::pg::arg_text(fcinfo, 0);
	if (!name || name->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "sync_name must not be empty or NULL",
		                "Name a list sync, e.g. SELECT * FROM iterable_audience.check_list('vip').");
	return *name;
}

void
require_list_sync(const ia::SyncDefinition &sync, const char *function)
{
	if (sync.kind != "list")
		throw UserError(ERRCODE_WRONG_OBJECT_TYPE,
		                std::string(function) + " works on list syncs; sync \"" + sync.name + "\" is a '" + sync.kind +
		                    "' sync, which keeps no Iterable list to compare",
		                "check_list and repair_list compare the members of the Iterable list of a sync made with "
		                "iterable_audience.create_sync().");
}

// The sync's owner must still be able to use the account, as for a run.
ia::Account
usable_account(const ia::SyncDefinition &sync)
{
	ia::Account account = ia::load_account(sync.account_name, true);
	if (!ia::account_usable_by(account, sync.owner))
		throw UserError(ERRCODE_INSUFFICIENT_PRIVILEGE,
		                "the owner of sync \"" + sync.name + "\" (" + ia::pg::role_name(sync.owner) +
		                    ") may no longer use account \"" + account.name + "\"",
		                "Grant it again with iterable_audience.grant_account_usage('" + account.name + "', '" +
		                    ia::pg::role_name(sync.owner) + "').");
	return account;
}

bool
has_completed_run(int64_t sync_id)
{
	return ia::pg::exec_scalar("SELECT EXISTS (SELECT 1 FROM iterable_audience.sync_runs WHERE sync_id = $1::bigint "
	                           "AND status IN ('succeeded', 'succeeded_with_failures'))",
	                           {std::to_string(sync_id)}, true) == SqlValue("t");
}

[[noreturn]] void
never_ran(const ia::SyncDefinition &sync)
{
	throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
	                "sync \"" + sync.name + "\" has not completed a run yet: there is no list to compare with "
	                "Iterable's",
	                "Run it first with SELECT * FROM iterable_audience.run_sync('" + sync.name +
	                    "'); then check_list compares Iterable's list with what the run left.");
}

void
probe_no_run_going(const ia::SyncDefinition &sync)
{
	if (!ia::try_lock_sync_for_run(sync.sync_id))
		throw UserError(ERRCODE_LOCK_NOT_AVAILABLE,
		                "a run of sync \"" + sync.name + "\" is going: what it sends is not in its snapshot yet",
		                "Check again when it ends (see iterable_audience.sync_runs where status = 'running').");
	ia::unlock_sync_for_run(sync.sync_id);
}

// Runs of the sync that sent batches but never built their snapshot, oldest first. Unlike
// unsettled_runs(), also those still marked 'running': called once no run holds the sync's lock, when
// such a row is a leftover of a crash (the next run's claim marks it failed).
std::vector<int64_t>
runs_to_settle(int64_t sync_id)
{
	ia::pg::SqlResult r = ia::pg::exec(
	    "SELECT r.run_id FROM iterable_audience.sync_runs r WHERE r.sync_id = $1::bigint AND NOT r.settled "
	    "AND EXISTS (SELECT 1 FROM iterable_audience.sync_batch b WHERE b.run_id = r.run_id AND b.kind = 'sent') "
	    "ORDER BY 1",
	    {std::to_string(sync_id)});
	std::vector<int64_t> runs;
	for (const ia::pg::SqlRow &row : r.rows)
		runs.push_back(std::stoll(*row[0]));
	return runs;
}

// The newest filled snapshot table, as latest_snapshot_table() finds it, but seeing what this call
// wrote before (a read-only statement would see the snapshot taken when the function's query began).
std::optional<std::string>
latest_snapshot(int64_t sync_id)
{
	return ia::pg::exec_scalar(
	    "SELECT format('iterable_audience_snapshots.%I', table_name) FROM iterable_audience.snapshot n "
	    "WHERE n.sync_id = $1::bigint AND n.filled AND to_regclass(format('iterable_audience_snapshots.%I', "
	    "table_name)) IS NOT NULL ORDER BY run_id DESC LIMIT 1",
	    {std::to_string(sync_id)});
}

const char *const kEmptyBaseline =
    "(SELECT NULL::text AS record_key, NULL::text AS email, NULL::text AS user_id WHERE false)";

// getUsers answers userIds when preferUserId=true and the user has one: wanted where the sync keys
// its records by userId (user_id projects, hybrid syncs with a userId column).
bool
prefer_user_id(const ia::SyncDefinition &sync)
{
	return sync.project_type == "user_id" || (sync.project_type == "hybrid" && sync.user_id_column);
}

// Loads the identifiers into a temporary table (identifier text), in chunks.
std::string
load_members(const std::vector<std::string> &members, const std::string &suffix)
{
	const std::string table = "pg_temp.ia_drift_members_" + suffix;
	ia::pg::exec(("CREATE TEMP TABLE " + table + " (identifier text NOT NULL)").c_str());
	const std::string insert = "INSERT INTO " + table + " SELECT unnest($1::text[])";
	for (size_t start = 0; start < members.size(); start += kInsertChunk) {
		size_t end = std::min(members.size(), start + kInsertChunk);
		std::vector<SqlValue> chunk(members.begin() + static_cast<std::ptrdiff_t>(start),
		                            members.begin() + static_cast<std::ptrdiff_t>(end));
		ia::pg::exec(insert.c_str(), {ia::pg::array_literal(chunk)});
	}
	return table;
}

// CREATE TEMP TABLE <result> (record_key, email, user_id, problem): the snapshot's records that
// Iterable's list lacks, and the list's members that no snapshot record is. A member is a record when
// it equals the record's userId or, normalized, its email (getUsers gives one or the other).
std::string
compare(const ia::SyncDefinition &sync, const std::string &baseline, const std::string &members,
        const std::string &suffix)
{
	const std::string result = "pg_temp.ia_drift_" + suffix;
	// How an unexpected member is shown (and, repaired, unsubscribed): by email where the project
	// identifies users by email, by userId in user_id projects; in hybrid ones as what it looks like.
	std::string as_email, as_user_id;
	if (sync.project_type == "email") {
		as_email = "coalesce(m.email_key, m.identifier)";
		as_user_id = "NULL::text";
	} else if (sync.project_type == "user_id") {
		as_email = "NULL::text";
		as_user_id = "m.identifier";
	} else {
		as_email = "m.email_key";
		as_user_id = "CASE WHEN m.email_key IS NULL THEN m.identifier END";
	}
	ia::pg::exec(("CREATE TEMP TABLE " + result + " AS WITH m AS MATERIALIZED (SELECT DISTINCT identifier, "
	              "iterable_audience.normalize_email(identifier) AS email_key FROM " + members + "), "
	              "b AS MATERIALIZED (SELECT record_key, email, user_id FROM " + baseline + " x) "
	              "SELECT b.record_key, b.email, b.user_id, 'missing_in_iterable'::text AS problem FROM b "
	              "WHERE NOT EXISTS (SELECT 1 FROM m WHERE m.identifier = b.user_id) "
	              "AND NOT EXISTS (SELECT 1 FROM m WHERE m.email_key = b.email) "
	              "UNION ALL SELECT coalesce(" + as_user_id + ", " + as_email + ", m.identifier), " + as_email + ", " +
	              as_user_id + ", 'unexpected_in_iterable' FROM m "
	              "WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.user_id = m.identifier) "
	              "AND NOT EXISTS (SELECT 1 FROM b WHERE b.email = m.email_key)")
	                 .c_str());
	return result;
}

std::string
next_suffix()
{
	static int calls = 0;
	return std::to_string(++calls);
}

void
drop_tables(const std::vector<std::string> &tables)
{
	for (const std::string &t : tables)
		ia::pg::exec(("DROP TABLE IF EXISTS " + t).c_str());
}

// Streams `sql`'s rows (all text columns) into the function's result.
void
return_rows(FunctionCallInfo fcinfo, const std::string &sql, int columns)
{
	ia::pg::SqlResult rows = ia::pg::exec(sql.c_str());
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	std::vector<Datum> values(static_cast<size_t>(columns));
	for (const ia::pg::SqlRow &row : rows.rows) {
		bool nulls[8];  // columns <= 8
		for (int i = 0; i < columns; i++) {
			nulls[i] = !row[static_cast<size_t>(i)];
			values[static_cast<size_t>(i)] = nulls[i] ? static_cast<Datum>(0) : ia::pg::text_datum(*row[static_cast<size_t>(i)]);
		}
		ia::pg::guard([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values.data(), nulls); });
	}
}

}  // namespace

IA_SQL_FUNCTION(ia_check_list)
{
	std::string name = require_sync_name(fcinfo);
	ia::pg::guard([&] { InitMaterializedSRF(fcinfo, 0); });
	ia::pg::SpiSession spi;
	ia::SyncDefinition sync = ia::load_sync(name);
	ia::check_sync_access(sync);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	require_list_sync(sync, "check_list");
	probe_no_run_going(sync);
	const std::string suffix = next_suffix();
	std::vector<std::string> temp_tables;

	// The baseline: the latest snapshot, with the batches of runs that ended before recording theirs
	// applied as the next run will apply them (into temporary tables, as preview_sync does).
	std::optional<std::string> baseline = ia::latest_snapshot_table(sync.sync_id);
	int n = 0;
	for (int64_t run : runs_to_settle(sync.sync_id)) {
		std::string table = "pg_temp.ia_drift_settled_" + suffix + "_" + std::to_string(++n);
		ia::pg::exec(("CREATE TEMP TABLE " + table + " AS " + ia::settled_snapshot_sql(baseline, run)).c_str());
		temp_tables.push_back(table);
		baseline = table;
	}
	if (!baseline && !has_completed_run(sync.sync_id))
		never_ran(sync);
	ia::Account account = usable_account(sync);

	std::vector<std::string> members = ia::fetch_list_members(account, sync.list_id, prefer_user_id(sync), sync.name);
	temp_tables.push_back(load_members(members, suffix));
	std::string result = compare(sync, baseline.value_or(kEmptyBaseline), temp_tables.back(), suffix);
	temp_tables.push_back(result);
	return_rows(fcinfo, "SELECT record_key, email, user_id, problem FROM " + result + " ORDER BY problem, record_key", 4);
	drop_tables(temp_tables);
	spi.finish();
	return static_cast<Datum>(0);
}

IA_SQL_FUNCTION(ia_repair_list)
{
	std::string name = require_sync_name(fcinfo);
	bool unsubscribe_unexpected = ia::pg::arg_bool(fcinfo, 1).value_or(false);
	ia::pg::guard([&] { InitMaterializedSRF(fcinfo, 0); });
	ia::pg::SpiSession spi;
	ia::SyncDefinition sync = ia::load_sync(name);
	ia::check_sync_access(sync);
	ia::check_owner_exists(sync);  // settling grants the snapshot to the owner
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	require_list_sync(sync, "repair_list");
	// Held to the end of the transaction: no run starts between the read-back and the marking.
	ia::SyncLock lock(sync.sync_id, "repair");
	ia::invalidate_source_read(sync.sync_id);
	const std::string id = std::to_string(sync.sync_id);

	// Runs that ended before recording their snapshot are settled now, as the next run would (a run
	// left 'running' by a crash first marked failed, as the next run's claim does).
	ia::fail_stale_runs(sync.sync_id);
	for (int64_t run : ia::unsettled_runs(sync.sync_id))
		ia::fill_run_snapshot(sync.sync_id, sync.name, run, sync.owner, latest_snapshot(sync.sync_id));
	std::optional<std::string> baseline = latest_snapshot(sync.sync_id);
	if (!baseline && !has_completed_run(sync.sync_id))
		never_ran(sync);
	ia::Account account = usable_account(sync);

	const std::string suffix = next_suffix();
	std::vector<std::string> members = ia::fetch_list_members(account, sync.list_id, prefer_user_id(sync), sync.name);
	std::vector<std::string> temp_tables{load_members(members, suffix)};
	std::string result = compare(sync, baseline.value_or(kEmptyBaseline), temp_tables.back(), suffix);
	temp_tables.push_back(result);

	bool mark_unexpected =
	    unsubscribe_unexpected &&
	    ia::pg::exec_scalar(("SELECT EXISTS (SELECT 1 FROM " + result + " WHERE problem = 'unexpected_in_iterable')").c_str()) ==
	        SqlValue("t");
	if (!baseline && mark_unexpected) {
		// The runs so far sent nothing to this list, so there is no snapshot table to mark: the sync's
		// latest run gets an empty one (the list as the sync believes it: empty).
		SqlValue run = ia::pg::exec_scalar("SELECT max(run_id) FROM iterable_audience.sync_runs WHERE sync_id = $1::bigint "
		                                   "AND status IN ('succeeded', 'succeeded_with_failures')",
		                                   {id});
		SqlValue shell = ia::pg::exec_scalar(
		    "SELECT format('iterable_audience_snapshots.%I', table_name) FROM iterable_audience.snapshot "
		    "WHERE sync_id = $1::bigint AND run_id = $2::bigint AND to_regclass(format('iterable_audience_snapshots.%I', "
		    "table_name)) IS NOT NULL",
		    {id, *run});
		std::string table = shell ? *shell : ia::create_snapshot_shell(sync.sync_id, sync.name, std::stoll(*run), sync.owner);
		ia::pg::exec("UPDATE iterable_audience.snapshot SET filled = true, row_count = 0, created_at = now() "
		             "WHERE sync_id = $1::bigint AND run_id = $2::bigint",
		             {id, *run});
		ia::pg::exec("UPDATE iterable_audience.sync_runs SET snapshot_table = $2 WHERE run_id = $1::bigint", {*run, table});
		baseline = table;
	}
	if (baseline) {
		// Missing members: in doubt, so the next run subscribes them again (if still in the audience).
		ia::pg::exec(("UPDATE " + *baseline + " s SET row_hash = " + std::to_string(ia::kInDoubtHash) + " FROM " + result +
		              " d WHERE d.problem = 'missing_in_iterable' AND d.record_key = s.record_key")
		                 .c_str());
		if (mark_unexpected) {
			// Unexpected members: added in doubt, so the next run unsubscribes them unless the
			// audience has them (then it subscribes them, which they already are).
			ia::pg::exec(("INSERT INTO " + *baseline + " (record_key, email, user_id, row_hash, synced_at, run_id) "
			              "SELECT DISTINCT ON (d.record_key) d.record_key, d.email, d.user_id, " +
			              std::to_string(ia::kInDoubtHash) + ", now(), (SELECT n.run_id FROM iterable_audience.snapshot n "
			              "WHERE n.sync_id = " + id + " AND n.filled ORDER BY n.run_id DESC LIMIT 1) FROM " + result +
			              " d WHERE d.problem = 'unexpected_in_iterable' AND NOT EXISTS (SELECT 1 FROM " + *baseline +
			              " s WHERE s.record_key = d.record_key)")
			                 .c_str());
			// The removal guard's denominator: the records now on the list as the sync believes it.
			ia::pg::exec(("UPDATE iterable_audience.snapshot n SET row_count = (SELECT count(*) FROM " + *baseline +
			              ") WHERE n.sync_id = " + id + " AND n.filled AND n.run_id = (SELECT max(run_id) FROM "
			              "iterable_audience.snapshot WHERE sync_id = " + id + " AND filled)")
			                 .c_str());
		}
	}
	const std::string action =
	    "CASE WHEN problem = 'missing_in_iterable' OR " + std::string(mark_unexpected ? "true" : "false") +
	    " THEN 'resent by the next run' ELSE 'left alone (unsubscribe_unexpected => false)' END";
	return_rows(fcinfo, "SELECT record_key, email, user_id, problem, " + action + " FROM " + result +
	                        " ORDER BY problem, record_key", 5);
	drop_tables(temp_tables);
	spi.finish();
	return static_cast<Datum>(0);
}
