// SQL API: scheduler_status() (what the scheduler of this database is doing) and wake_scheduler()
// (look for due syncs now rather than at the next planned wake, e.g. after changing next_run_at by
// hand). Each database has its own scheduler: both report on and wake the current database's.
#include "scheduler/shmem.hpp"
#include "scheduler/wake.hpp"
#include "settings.hpp"

#include "pg/args.hpp"

extern "C" {
#include "access/htup_details.h"
#include "commands/dbcommands.h"
}

namespace {

constexpr int kStatusColumns = 11;

}  // namespace

IA_SQL_FUNCTION(ia_scheduler_status)
{
	TupleDesc desc;
	if (ia::pg::guard([&] { return get_call_result_type(fcinfo, nullptr, &desc); }) != TYPEFUNC_COMPOSITE)
		throw ia::pg::UserError(ERRCODE_FEATURE_NOT_SUPPORTED, "scheduler_status() must return a record");
	Datum values[kStatusColumns];
	bool nulls[kStatusColumns];
	for (int i = 0; i < kStatusColumns; i++) {
		values[i] = 0;
		nulls[i] = true;
	}
	auto set = [&](int column, Datum value) {
		values[column] = value;
		nulls[column] = false;
	};
	auto set_time = [&](int column, int64_t t) {
		if (t != 0)
			set(column, TimestampTzGetDatum(t));
	};
	std::optional<ia::scheduler::Status> status = ia::scheduler::read_status(MyDatabaseId);
	const char *restriction = ia::settings::database_name;  // NULL without preloading; "": every database
	std::string here = ia::pg::guard([] {
		const char *name = get_database_name(MyDatabaseId);
		return std::string(name ? name : "");
	});
	if (!status) {
		set(2, BoolGetDatum(false));
		set(3, ia::pg::text_datum("not loaded: add iterable_audience to shared_preload_libraries to run syncs on "
		                          "their schedules"));
	} else if (restriction && *restriction && here != restriction) {
		set(1, ia::pg::text_datum(restriction));
		set(2, BoolGetDatum(false));
		set(3, ia::pg::text_datum(std::string("not served here: iterable_audience.database_name restricts the "
		                                      "scheduler to database \"") + restriction + "\""));
	} else {
		set(1, ia::pg::text_datum(status->pid != 0 ? status->database_name : here));
		set(2, BoolGetDatum(status->pid != 0));
		if (status->pid != 0) {
			set(0, Int32GetDatum(status->pid));
			set_time(4, status->started_at);
			set_time(5, status->last_wake_at);
			set_time(6, status->next_wake_at);
			set(7, Int32GetDatum(status->running_runs));
			set(3, ia::pg::text_datum(status->state));
		} else if (!status->launcher_running) {
			set(3, ia::pg::text_datum("not running: the launcher is not running (the postmaster starts it again "
			                          "within 5 s)"));
		} else if (status->has_entry) {
			set(3, ia::pg::text_datum("not running: " + status->state));
		} else {
			set(3, ia::pg::text_datum("not running yet: the launcher starts it within a few seconds"));
		}
		set(8, Int64GetDatum(status->runs_started));
		set(9, Int64GetDatum(status->runs_skipped));
	}
	// The scheduler's own value once it has reported (it reloads the configuration on SIGHUP).
	int max_concurrent = status && status->pid != 0 && status->max_concurrent_syncs > 0 ? status->max_concurrent_syncs
	                                                                                     : ia::settings::max_concurrent_syncs;
	set(10, Int32GetDatum(max_concurrent));
	HeapTuple tuple = ia::pg::guard([&] { return heap_form_tuple(BlessTupleDesc(desc), values, nulls); });
	return HeapTupleGetDatum(tuple);
}

IA_SQL_FUNCTION(ia_wake_scheduler)
{
	ia::wake_scheduler_at_commit();
	std::optional<ia::scheduler::Status> status = ia::scheduler::read_status(MyDatabaseId);
	PG_RETURN_BOOL(status && status->pid != 0);
}
