#include "definitions/account_store.hpp"
#include "engine/source_changes.hpp"

#include "pg/guc_scope.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

namespace {

// The source's relations as an oid[] literal, resolved as the sync's owner with its search_path (as
// the plan reads it); nullopt when the source cannot be tracked.
pg::SqlValue
source_relations(const SyncDefinition &sync)
{
	pg::AsRole as_owner(sync.owner);
	pg::GucScope scope;
	scope.set("search_path", sync.search_path);
	return pg::exec_scalar("SELECT iterable_audience.sync_source_relations($1)::text", {sync.source});
}

void record_pending_read(const SyncDefinition &sync, int64_t run_id);

bool
owner_may_run(const SyncDefinition &sync)
{
	Oid owner = sync.owner;
	bool exists = pg::guard([&] { return OidIsValid(owner) && GetUserNameFromId(owner, true) != nullptr; });
	return exists && account_usable_by(load_account(sync.account_name, false), sync.owner);
}

// False on a 0.1.0 schema (this library loaded before ALTER EXTENSION ... UPDATE): no change
// tracking there, so every run reads its source, as 0.1.0 did.
bool
tracking_installed()
{
	return pg::exec_scalar("SELECT to_regclass('iterable_audience.source_watch') IS NOT NULL") == pg::SqlValue("t");
}

}  // namespace

std::optional<int64_t>
idle_since_run(const SyncDefinition &sync)
{
	if (!tracking_installed())
		return std::nullopt;
	const std::string id = std::to_string(sync.sync_id);
	pg::SqlResult watch = pg::exec(
	    "SELECT w.read_run_id::text, w.read_relids::text, w.read_fingerprint, w.read_snapshot::text "
	    "FROM iterable_audience.source_watch w JOIN iterable_audience.sync s ON s.sync_id = w.sync_id "
	    "WHERE w.sync_id = $1::bigint AND w.converged AND w.read_tracked AND w.pending_run_id IS NULL "
	    "AND w.sync_updated_at = s.updated_at AND NOT s.reset_pending "
	    "AND w.read_snapshot_table IS NOT DISTINCT FROM (SELECT format('iterable_audience_snapshots.%I', n.table_name) "
	    "  FROM iterable_audience.snapshot n WHERE n.sync_id = s.sync_id AND n.filled "
	    "  AND to_regclass(format('iterable_audience_snapshots.%I', n.table_name)) IS NOT NULL "
	    "  ORDER BY n.run_id DESC LIMIT 1)",
	    {id});
	if (watch.empty() || !owner_may_run(sync))
		return std::nullopt;  // a full run says why it cannot run
	const pg::SqlRow &w = watch.rows[0];
	pg::SqlValue now_relids = source_relations(sync);
	if (!now_relids || now_relids != w[1])
		return std::nullopt;  // not trackable now, or other relations (a new partition, a changed view)
	pg::SqlValue changed = pg::exec_scalar(
	    "SELECT iterable_audience.source_changed_since($1::oid[], $2, $3::pg_snapshot)", {w[1], w[2], w[3]});
	if (changed != pg::SqlValue("f"))
		return std::nullopt;
	return std::stoll(*w[0]);
}

void
record_idle_run(int64_t run_id, int64_t read_run_id)
{
	// For the rest of this worker (it ends the idle run and exits): its commits need not wait for the
	// disk. Lost in a crash, the idle run is marked failed at restart ('server restarted') and the
	// next run is as if it never happened; nothing was sent.
	pg::exec("SET synchronous_commit = off");
	// The planned counters the sync's kind uses (those its last reading run set) are 0; the others stay NULL.
	pg::exec("UPDATE iterable_audience.sync_runs r SET source_read = false, "
	         "planned_subscribes = CASE WHEN p.planned_subscribes IS NOT NULL THEN 0 END, "
	         "planned_unsubscribes = CASE WHEN p.planned_unsubscribes IS NOT NULL THEN 0 END, "
	         "planned_updates = CASE WHEN p.planned_updates IS NOT NULL THEN 0 END, "
	         "records_planned = 0, audience_rows = p.audience_rows, phase = 'finishing' "
	         "FROM iterable_audience.sync_runs p WHERE r.run_id = $1::bigint AND p.run_id = $2::bigint",
	         {std::to_string(run_id), std::to_string(read_run_id)});
}

void
prepare_source_read(const SyncDefinition &sync, int64_t run_id)
{
	if (!pg::in_transaction([&] { return tracking_installed(); }))
		return;
	try {
		record_pending_read(sync, run_id);
	} catch (const pg::PgError &e) {
		std::string message = e.message;
		pg::guard([&] {
			ereport(WARNING, (errmsg("iterable_audience: sync \"%s\": changes of its source not tracked for this run: %s",
			                         sync.name.c_str(), message.c_str())));
		});
		// The last read no longer tells whether this run's outcome is current: the next run reads too.
		pg::in_transaction([&] {
			pg::exec("UPDATE iterable_audience.source_watch SET converged = false WHERE sync_id = $1::bigint",
			         {std::to_string(sync.sync_id)});
		});
	}
}

namespace {

void
record_pending_read(const SyncDefinition &sync, int64_t run_id)
{
	pg::in_transaction([&] {
		// Pruning takes SHARE on this table: it either ends before this read's snapshot is taken (so
		// it deleted only what this snapshot sees) or sees the pending snapshot it must keep rows for.
		pg::exec("LOCK TABLE iterable_audience.source_watch IN ROW EXCLUSIVE MODE");
		Oid owner = sync.owner;
		bool owner_exists = pg::guard([&] { return OidIsValid(owner) && GetUserNameFromId(owner, true) != nullptr; });
		pg::SqlValue relids = owner_exists ? source_relations(sync) : std::nullopt;
		bool tracked = relids && pg::exec_scalar("SELECT iterable_audience.watch_source_tables($1::oid[])", {relids}) ==
		                             pg::SqlValue("t");
		// A new statement, so a new snapshot: taken after the triggers exist (CREATE TRIGGER waited for
		// the table's writers), so every write it does not see is logged.
		pg::exec("INSERT INTO iterable_audience.source_watch AS w (sync_id, sync_updated_at, converged, pending_run_id, "
		         "pending_tracked, pending_relids, pending_fingerprint, pending_snapshot) "
		         "SELECT s.sync_id, s.updated_at, false, $2::bigint, $3::boolean, $4::oid[], "
		         "iterable_audience.source_fingerprint($4::oid[]), pg_catalog.pg_current_snapshot() "
		         "FROM iterable_audience.sync s WHERE s.sync_id = $1::bigint "
		         "ON CONFLICT (sync_id) DO UPDATE SET sync_updated_at = EXCLUDED.sync_updated_at, converged = false, "
		         "pending_run_id = EXCLUDED.pending_run_id, pending_tracked = EXCLUDED.pending_tracked, "
		         "pending_relids = EXCLUDED.pending_relids, pending_fingerprint = EXCLUDED.pending_fingerprint, "
		         "pending_snapshot = EXCLUDED.pending_snapshot",
		         {std::to_string(sync.sync_id), std::to_string(run_id), tracked ? "true" : "false", relids});
		pg::exec("UPDATE iterable_audience.sync_runs SET source_read = true WHERE run_id = $1::bigint",
		         {std::to_string(run_id)});
	});
}

}  // namespace

void
record_source_read(const SyncDefinition &sync, int64_t run_id, bool converged)
{
	if (!tracking_installed())
		return;
	// Records in doubt (a batch unanswered, or answered in a way that cannot be told) are sent again
	// by the next run: not converged.
	pg::exec("UPDATE iterable_audience.source_watch w SET read_run_id = w.pending_run_id, "
	         "read_tracked = w.pending_tracked, read_relids = w.pending_relids, "
	         "read_fingerprint = w.pending_fingerprint, read_snapshot = w.pending_snapshot, "
	         "read_snapshot_table = (SELECT format('iterable_audience_snapshots.%I', n.table_name) "
	         "  FROM iterable_audience.snapshot n WHERE n.sync_id = w.sync_id AND n.filled "
	         "  AND to_regclass(format('iterable_audience_snapshots.%I', n.table_name)) IS NOT NULL "
	         "  ORDER BY n.run_id DESC LIMIT 1), "
	         "converged = $3::boolean AND w.pending_tracked AND NOT EXISTS (SELECT 1 FROM iterable_audience.sync_batch b "
	         "  WHERE b.run_id = $2::bigint AND b.kind = 'sent' AND (b.answered_at IS NULL OR b.outcome_unknown)), "
	         "pending_run_id = NULL, pending_tracked = NULL, pending_relids = NULL, pending_fingerprint = NULL, "
	         "pending_snapshot = NULL "
	         "WHERE w.sync_id = $1::bigint AND w.pending_run_id = $2::bigint",
	         {std::to_string(sync.sync_id), std::to_string(run_id), converged ? "true" : "false"});
}

void
prune_source_changes()
{
	try {
		pg::in_transaction([&] {
			if (!tracking_installed())
				return;
			pg::exec("SET LOCAL lock_timeout = '2s'");
			pg::exec("LOCK TABLE iterable_audience.source_watch IN SHARE MODE");
			pg::exec("DELETE FROM iterable_audience.source_change c WHERE NOT EXISTS ("
			         "SELECT 1 FROM iterable_audience.source_watch w "
			         "WHERE NOT pg_catalog.pg_visible_in_snapshot(c.xact, w.read_snapshot) "
			         "OR NOT pg_catalog.pg_visible_in_snapshot(c.xact, w.pending_snapshot))");
		});
	} catch (const pg::PgError &e) {
		std::string message = e.message;
		pg::guard([&] {
			ereport(WARNING, (errmsg("iterable_audience: pruning the source change log skipped: %s", message.c_str())));
		});
	}
}

void
invalidate_source_read(int64_t sync_id)
{
	if (!tracking_installed())
		return;
	pg::exec("UPDATE iterable_audience.source_watch SET converged = false WHERE sync_id = $1::bigint",
	         {std::to_string(sync_id)});
}

void
forget_source_reads(int64_t sync_id)
{
	if (!tracking_installed())
		return;
	pg::SqlValue relids = pg::exec_scalar(
	    "DELETE FROM iterable_audience.source_watch WHERE sync_id = $1::bigint "
	    "RETURNING (coalesce(read_relids, '{}') || coalesce(pending_relids, '{}'))::text",
	    {std::to_string(sync_id)});
	if (relids)
		pg::exec("SELECT iterable_audience.unwatch_source_tables($1::oid[])", {relids});
}

}  // namespace ia
