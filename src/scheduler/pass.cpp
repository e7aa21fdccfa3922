#include <algorithm>

#include "engine/run_launcher.hpp"
#include "engine/run_request.hpp"
#include "scheduler/pass.hpp"
#include "scheduler/shmem.hpp"
#include "settings.hpp"
#include "engine/sync_lock.hpp"
#include "definitions/sync_schedule.hpp"

#include "pg/roles.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/lmgr.h"
}

namespace ia::scheduler {

namespace {

constexpr long kMaxSleepMs = 60000;     // never sleep longer: a missed wake costs at most this
constexpr long kBusyRetryMs = 1000;     // a table or a sync row is locked by someone else
constexpr long kErrorPauseMs = 10000;   // after an error in the pass itself

// Run workers this scheduler started and that have not exited yet (process-local: handles are
// pointers into this process's memory and die with it).
struct Launched {
	BackgroundWorkerHandle *handle;
	int64_t sync_id;
};
std::vector<Launched> launched;

bool interrupted_runs_failed = false;   // done once per scheduler start, when the extension is there
bool serving = false;                   // this process has found the extension installed

struct DueSync {
	int64_t sync_id;
	std::string name;
	int64_t run_id;
};

struct PassPlan {
	bool installed = false;
	bool busy = false;               // could not lock the extension's tables without waiting
	std::vector<DueSync> to_start;
	Oid worker_role = InvalidOid;
	long sleep_ms = kMaxSleepMs;
	std::string state;
};

void
log_message(int level, const std::string &text)
{
	pg::guard([&] { ereport(level, (errmsg("iterable_audience scheduler: %s", text.c_str()))); });
}

std::string
oid_text(Oid oid)
{
	return std::to_string(static_cast<unsigned long>(oid));
}

// Forgets the run workers that have exited.
void
reap_exited_workers()
{
	for (auto it = launched.begin(); it != launched.end();) {
		pid_t pid;
		BackgroundWorkerHandle *handle = it->handle;
		BgwHandleStatus status = pg::guard([&] { return GetBackgroundWorkerPid(handle, &pid); });
		if (status == BGWH_STOPPED) {
			pg::guard([&] { pfree(handle); });
			it = launched.erase(it);
		} else {
			++it;
		}
	}
}

bool
launched_for(int64_t sync_id)
{
	return std::any_of(launched.begin(), launched.end(), [&](const Launched &l) { return l.sync_id == sync_id; });
}

// The extension's tables, locked for this transaction without waiting: DROP EXTENSION (or anything
// else holding a strong lock) is never blocked by the scheduler; the scheduler retries a bit later.
// nullopt-like answers through the plan: not installed, or busy.
void
lock_extension_tables(PassPlan &plan)
{
	pg::SqlResult r = pg::exec("SELECT pg_catalog.to_regclass('iterable_audience.sync')::oid::text, "
	                           "pg_catalog.to_regclass('iterable_audience.sync_runs')::oid::text "
	                           "FROM pg_catalog.pg_extension WHERE extname = 'iterable_audience'",
	                           {}, true);
	if (r.empty() || !r.at(0, 0) || !r.at(0, 1))
		return;
	plan.installed = true;
	for (const pg::SqlValue &oid : r.rows[0]) {
		Oid relid = static_cast<Oid>(std::stoul(*oid));
		bool locked = pg::guard([&] { return ConditionalLockRelationOid(relid, RowExclusiveLock); });
		if (!locked) {
			plan.busy = true;
			return;
		}
	}
}

// Runs left 'running' by a worker that is gone: nobody holds their sync's run lock.
void
fail_interrupted_runs()
{
	pg::SqlResult r = pg::exec(
	    "UPDATE iterable_audience.sync_runs r SET status = 'failed', finished_at = pg_catalog.clock_timestamp(), "
	    "error = 'server restarted' "
	    "WHERE r.status = 'running' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l "
	    "WHERE l.locktype = 'advisory' AND l.database = $1::oid AND l.classid = $2::oid AND l.objsubid = 2 "
	    "AND l.granted AND l.objid::bigint = r.sync_id % 2147483647) "
	    "RETURNING r.run_id::text, r.sync_name",
	    {oid_text(MyDatabaseId), std::to_string(kSyncLockClass)});
	for (const pg::SqlRow &row : r.rows)
		log_message(LOG, "run " + *row[0] + " of sync \"" + *row[1] +
		                     "\" was still marked running after a restart: marked failed ('server restarted'); the "
		                     "sync runs again at its next due time");
}

void
set_next_run_at(int64_t sync_id, const std::optional<std::string> &next_unix)
{
	pg::exec("UPDATE iterable_audience.sync SET next_run_at = pg_catalog.to_timestamp($2::double precision) "
	         "WHERE sync_id = $1::bigint",
	         {std::to_string(sync_id), next_unix});
}

// Decides what to do with each due sync; returns how many wait for a free slot.
int
handle_due_syncs(PassPlan &plan, int &skipped)
{
	// SKIP LOCKED: a sync row locked by an open alter_sync() or a finishing run is looked at again in
	// a second (or when that transaction's commit wakes us), instead of blocking the scheduler.
	pg::SqlResult due = pg::exec(
	    "WITH held AS (SELECT l.objid::bigint AS lock_key FROM pg_catalog.pg_locks l "
	    "  WHERE l.locktype = 'advisory' AND l.database = $1::oid AND l.classid = $2::oid AND l.objsubid = 2 "
	    "  AND l.granted) "
	    "SELECT s.sync_id::text, s.sync_name, s.schedule, "
	    "  EXISTS (SELECT 1 FROM held WHERE held.lock_key = s.sync_id % 2147483647), "
	    "  (SELECT max(r.run_id)::text FROM iterable_audience.sync_runs r "
	    "    WHERE r.sync_id = s.sync_id AND r.status = 'running') "
	    "FROM iterable_audience.sync s WHERE NOT s.paused AND s.next_run_at <= pg_catalog.now() "
	    "ORDER BY s.next_run_at, s.sync_id FOR UPDATE OF s SKIP LOCKED",
	    {oid_text(MyDatabaseId), std::to_string(kSyncLockClass)});

	int free_slots = std::max(0, settings::max_concurrent_syncs - static_cast<int>(launched.size()));
	int waiting = 0;
	for (const pg::SqlRow &row : due.rows) {
		int64_t sync_id = std::stoll(*row[0]);
		const std::string &name = *row[1];
		bool running = (row[3] && *row[3] == "t") || launched_for(sync_id);
		std::optional<std::string> next;
		try {
			next = next_run_at_text(*row[2]);
		} catch (const std::exception &e) {
			// Only a direct UPDATE of the table can store an invalid schedule: park the sync.
			log_message(WARNING, "sync \"" + name + "\" has an invalid schedule and is not scheduled until it is fixed "
			                     "with iterable_audience.alter_sync(): " + e.what());
			set_next_run_at(sync_id, std::nullopt);
			continue;
		}
		if (running) {
			log_message(LOG, "run of sync \"" + name + "\" skipped: still running" +
			                     (row[4] ? " (run " + *row[4] + ")" : std::string()) + "; next run at its next due time");
			set_next_run_at(sync_id, next);
			skipped++;
			continue;
		}
		if (free_slots == 0) {
			waiting++;  // due, and started as soon as one of our runs ends
			continue;
		}
		free_slots--;
		set_next_run_at(sync_id, next);
		plan.to_start.push_back({sync_id, name, allocate_run_id()});
	}
	return waiting;
}

// How long to sleep: until the earliest future next_run_at, capped; a second when a due sync was
// locked by someone else.
long
sleep_time(int waiting)
{
	pg::SqlResult r = pg::exec(
	    "SELECT pg_catalog.ceil(extract(epoch FROM min(next_run_at) FILTER (WHERE next_run_at > pg_catalog.now()) "
	    "  - pg_catalog.clock_timestamp()) * 1000)::bigint::text, "
	    "count(*) FILTER (WHERE next_run_at <= pg_catalog.now())::text "
	    "FROM iterable_audience.sync WHERE NOT paused");  // not read_only: it must see this pass's updates
	long ms = kMaxSleepMs;
	if (r.at(0, 0))
		ms = std::clamp<long>(std::stol(*r.at(0, 0)), 1, kMaxSleepMs);
	if (std::stol(*r.at(0, 1)) > waiting)
		ms = std::min(ms, kBusyRetryMs);
	return ms;
}

PassPlan
plan_pass()
{
	return pg::in_transaction([&] {
		PassPlan plan;
		lock_extension_tables(plan);
		if (!plan.installed) {
			plan.state = "extension iterable_audience is not installed in this database";
			return plan;
		}
		if (plan.busy) {
			plan.sleep_ms = kBusyRetryMs;
			plan.state = "waiting for a lock on the extension's tables";
			return plan;
		}
		if (!interrupted_runs_failed) {
			fail_interrupted_runs();
			interrupted_runs_failed = true;
		}
		int skipped = 0;
		int waiting = handle_due_syncs(plan, skipped);
		if (skipped > 0)
			count_skipped(skipped);
		if (!plan.to_start.empty())
			plan.worker_role = pg::extension_owner();
		plan.sleep_ms = sleep_time(waiting);
		plan.state = waiting > 0 ? std::to_string(waiting) + " due sync(s) waiting for a free slot "
		                                                     "(iterable_audience.max_concurrent_syncs)"
		                         : "waiting for the next due sync";
		return plan;
	});
}

// Records a scheduled run whose worker could not be started, so that it shows in sync_runs.
void
record_unstarted_run(const DueSync &sync, const std::string &why)
{
	log_message(WARNING, "could not start run " + std::to_string(sync.run_id) + " of sync \"" + sync.name + "\": " + why);
	try {
		pg::in_transaction([&] {
			pg::exec("INSERT INTO iterable_audience.sync_runs (run_id, sync_id, sync_name, trigger, status, finished_at, "
			         "error) OVERRIDING SYSTEM VALUE VALUES ($1::bigint, $2::bigint, $3, 'schedule', 'failed', "
			         "pg_catalog.clock_timestamp(), $4)",
			         {std::to_string(sync.run_id), std::to_string(sync.sync_id), sync.name,
			          "the scheduler could not start the run: " + why});
		});
	} catch (const pg::PgError &e) {
		log_message(WARNING, "could not record run " + std::to_string(sync.run_id) + ": " + e.message);
	}
}

// The handle of a dynamic worker must outlive this pass: allocate it in TopMemoryContext.
class InTopMemoryContext {
 public:
	InTopMemoryContext() : saved_(MemoryContextSwitchTo(TopMemoryContext)) {}
	~InTopMemoryContext() { MemoryContextSwitchTo(saved_); }

 private:
	MemoryContext saved_;
};

int
start_runs(const PassPlan &plan)
{
	int started = 0;
	for (const DueSync &sync : plan.to_start) {
		RunRequest request;
		memset(&request, 0, sizeof(request));
		request.sync_id = sync.sync_id;
		request.run_id = sync.run_id;
		request.database_id = MyDatabaseId;
		request.worker_role = plan.worker_role;
		request.scheduled = 1;
		request.force = 0;
		capture_settings(request);
		try {
			BackgroundWorkerHandle *handle;
			{
				InTopMemoryContext top;
				handle = start_run_worker(request, sync.name, true);
			}
			launched.push_back({handle, sync.sync_id});
			started++;
			log_message(LOG, "started run " + std::to_string(sync.run_id) + " of sync \"" + sync.name + "\"");
		} catch (const pg::UserError &e) {
			record_unstarted_run(sync, e.what());
		}
	}
	return started;
}

PassOutcome
pass(const char *database_name)
{
	TimestampTz woke_at = GetCurrentTimestamp();
	pg::guard([] { pgstat_report_activity(STATE_RUNNING, "iterable_audience scheduler: looking for due syncs"); });
	reap_exited_workers();

	// Read before the pass's snapshot: a CREATE EXTENSION that bumps it later is looked at again.
	uint32_t generation = recheck_generation();
	PassPlan plan = plan_pass();
	if (!plan.installed) {
		if (serving)
			log_message(LOG, std::string("extension iterable_audience was dropped in database \"") + database_name +
			                     "\": this scheduler exits (CREATE EXTENSION starts one again)");
		report_not_installed(generation);
		return {0, true};
	}
	if (!serving) {
		serving = true;
		mark_serving();
		log_message(LOG, std::string("serving database \"") + database_name + "\"");
	}
	int started = start_runs(plan);
	if (started > 0)
		count_started(started);

	std::string activity = "iterable_audience scheduler: " + plan.state;
	report_pass(woke_at, woke_at + static_cast<int64_t>(plan.sleep_ms) * 1000, static_cast<int>(launched.size()),
	            settings::max_concurrent_syncs, plan.state.c_str());
	pg::guard([&] { pgstat_report_activity(STATE_IDLE, activity.c_str()); });
	return {plan.sleep_ms, false};
}

}  // namespace

PassOutcome
run_pass(const char *database_name) noexcept
{
	std::string error;
	try {
		return pass(database_name);
	} catch (const pg::PgError &e) {
		error = e.message;
	} catch (const pg::UserError &e) {
		error = e.what();
	} catch (const std::exception &e) {
		error = std::string("internal error: ") + e.what();
	} catch (...) {
		error = "unknown internal error";
	}
	pg::abort_transaction();
	try {
		log_message(WARNING, "pass failed, trying again in 10 s: " + error);
		report_pass(GetCurrentTimestamp(), GetCurrentTimestamp() + kErrorPauseMs * 1000,
		            static_cast<int>(launched.size()), settings::max_concurrent_syncs, ("error: " + error).substr(0, 120).c_str());
	} catch (...) {
		// Nothing more to do: the pause still applies.
	}
	return {kErrorPauseMs, false};
}

}  // namespace ia::scheduler
