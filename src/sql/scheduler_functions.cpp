// SQL API: scheduler_status() (what the scheduler is doing) and wake_scheduler() (look for due syncs
// now rather than at the next planned wake, e.g. after changing next_run_at by hand).
#include "scheduler/shmem.hpp"
#include "scheduler/wake.hpp"
#include "settings.hpp"

#include "pg/args.hpp"

extern "C" {
#include "access/htup_details.h"
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
	std::optional<ia::scheduler::Status> status = ia::scheduler::read_status();
	const char *configured = ia::settings::database_name;  // NULL without preloading
	if (!status) {
		set(2, BoolGetDatum(false));
		set(3, ia::pg::text_datum("not loaded: add iterable_audience to shared_preload_libraries to run syncs on "
		                          "their schedules"));
	} else {
		if (status->pid != 0) {
			set(0, Int32GetDatum(status->pid));
			set(1, ia::pg::text_datum(status->database_name));
			set(2, BoolGetDatum(status->database_id == MyDatabaseId));
			set_time(4, status->started_at);
			set_time(5, status->last_wake_at);
			set_time(6, status->next_wake_at);
			set(7, Int32GetDatum(status->running_runs));
		} else {
			if (configured)
				set(1, ia::pg::text_datum(configured));
			set(2, BoolGetDatum(false));
		}
		set(3, ia::pg::text_datum(status->state));
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
	std::optional<ia::scheduler::Status> status = ia::scheduler::read_status();
	PG_RETURN_BOOL(status && status->pid != 0 && status->database_id == MyDatabaseId);
}
