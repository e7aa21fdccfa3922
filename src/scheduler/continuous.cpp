#include <algorithm>

#include "engine/sync_lock.hpp"
#include "scheduler/continuous.hpp"
#include "settings.hpp"

#include "pg/spi.hpp"

namespace ia::scheduler {

// A continuous sync is due, once none of its runs is going, when:
// - its source is tracked and may have changed since the last run read it (a logged write that
//   run's snapshot does not see, or a relation's definition differs); or
// - it has not read its source yet, was altered, resumed or reset since, or its source cannot be
//   tracked: at most once per continuous_latency after its last run ended; or
// - its last run did not converge (failures to retry, records in doubt, a failed or blocked run):
//   retried after 60 x continuous_latency even without a change; or
// - its last run ended an hour ago: a safety net for what the change log cannot see (a grant, the
//   owner's search_path resolving a query's names elsewhere). That run is idle when nothing changed.
ContinuousLook
look_at_continuous_syncs()
{
	pg::SqlResult r = pg::exec(
	    "WITH held AS (SELECT l.objid::bigint AS lock_key FROM pg_catalog.pg_locks l "
	    "  WHERE l.locktype = 'advisory' AND l.database = $1::oid AND l.classid = $2::oid AND l.objsubid = 2 "
	    "  AND l.granted) "
	    "SELECT s.sync_id::text, s.sync_name, "
	    "  NOT EXISTS (SELECT 1 FROM held WHERE held.lock_key = s.sync_id % 2147483647) "
	    "  AND last.status IS DISTINCT FROM 'running' "
	    "  AND (last.status IS NULL "
	    "    OR last.finished_at <= pg_catalog.now() - interval '1 hour' "
	    "    OR (w.read_tracked AND iterable_audience.source_changed_since(w.read_relids, w.read_fingerprint, "
	    "        w.read_snapshot)) "
	    "    OR (last.finished_at <= pg_catalog.now() - make_interval(secs => $3::integer) "
	    "        AND last.status NOT IN ('failed', 'blocked') AND (w.sync_id IS NULL OR NOT coalesce(w.read_tracked, false) OR s.reset_pending "
	    "             OR w.sync_updated_at IS DISTINCT FROM s.updated_at)) "
	    "    OR (NOT coalesce(w.converged, false) "
	    "        AND last.finished_at <= pg_catalog.now() - make_interval(secs => 60 * $3::integer))) "
	    "FROM iterable_audience.sync s "
	    "LEFT JOIN iterable_audience.source_watch w ON w.sync_id = s.sync_id "
	    "LEFT JOIN LATERAL (SELECT r.status, coalesce(r.finished_at, r.started_at) AS finished_at "
	    "  FROM iterable_audience.sync_runs r WHERE r.sync_id = s.sync_id ORDER BY r.run_id DESC LIMIT 1) last ON true "
	    "WHERE s.schedule = 'continuous' AND NOT s.paused ORDER BY s.sync_id",
	    {std::to_string(static_cast<unsigned long>(MyDatabaseId)), std::to_string(kSyncLockClass),
	     std::to_string(settings::continuous_latency_s)});
	ContinuousLook look;
	look.any = !r.empty();
	for (const pg::SqlRow &row : r.rows)
		if (row[2] && *row[2] == "t")
			look.due.push_back({std::stoll(*row[0]), *row[1]});
	return look;
}

long
continuous_poll_ms()
{
	return std::max(500L, static_cast<long>(settings::continuous_latency_s) * 500L);
}

}  // namespace ia::scheduler
