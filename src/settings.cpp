#include "pg/postgres.hpp"
#include "settings.hpp"

namespace ia::settings {

int connect_timeout_ms = 5000;
int request_timeout_ms = 30000;
int max_response_bytes = 16 * 1024 * 1024;
int max_attempts = 5;
int retry_base_delay_ms = 500;
int retry_max_delay_ms = 30000;
char *ca_file = nullptr;
int batch_size = 1000;
int max_requests_in_flight = 4;
int plan_work_mem_kb = 24 * 1024;
char *database_name = nullptr;
int max_concurrent_syncs = 2;

void
define()
{
	DefineCustomIntVariable("iterable_audience.connect_timeout_ms",
	                        "Time allowed to connect to Iterable, per attempt.", nullptr, &connect_timeout_ms,
	                        5000, 100, 600000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("iterable_audience.request_timeout_ms",
	                        "Time allowed for one whole request to Iterable, per attempt.", nullptr,
	                        &request_timeout_ms, 30000, 100, 3600000, PGC_USERSET, GUC_UNIT_MS, nullptr,
	                        nullptr, nullptr);
	DefineCustomIntVariable("iterable_audience.max_response_bytes",
	                        "Largest response body accepted from Iterable; a larger one fails the request.",
	                        nullptr, &max_response_bytes, 16 * 1024 * 1024, 1024, INT_MAX, PGC_SUSET, GUC_UNIT_BYTE,
	                        nullptr, nullptr, nullptr);
	DefineCustomIntVariable("iterable_audience.max_attempts",
	                        "Attempts per request (first try included) on 429, 5xx, timeouts and dropped connections.",
	                        nullptr, &max_attempts, 5, 1, 100, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("iterable_audience.retry_base_delay_ms",
	                        "Base of the exponential backoff (with full jitter) between attempts.", nullptr,
	                        &retry_base_delay_ms, 500, 1, 600000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
	                        nullptr);
	DefineCustomIntVariable("iterable_audience.retry_max_delay_ms", "Longest wait between two attempts.", nullptr,
	                        &retry_max_delay_ms, 30000, 1, 3600000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
	                        nullptr);
	DefineCustomStringVariable("iterable_audience.ca_file",
	                           "CA bundle used to verify Iterable's TLS certificate (empty: the system bundle).",
	                           nullptr, &ca_file, "", PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("iterable_audience.batch_size", "Subscribers per subscribe or unsubscribe request.",
	                        nullptr, &batch_size, 1000, 1, 10000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("iterable_audience.plan_work_mem",
	                        "work_mem of the query that plans a run (its hash tables may use twice this); "
	                        "-1 uses work_mem.",
	                        nullptr, &plan_work_mem_kb, 24 * 1024, -1, INT_MAX, PGC_SUSET, GUC_UNIT_KB, nullptr, nullptr,
	                        nullptr);
	DefineCustomIntVariable("iterable_audience.max_requests_in_flight",
	                        "Requests a sync run keeps in flight at once.", nullptr, &max_requests_in_flight, 4, 1,
	                        64, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	// PGC_POSTMASTER variables can only be defined at server start: without preloading there is no
	// scheduler, and no database_name either.
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("iterable_audience.database_name",
		                           "Restricts the scheduler to one database; empty: every database where the "
		                           "extension is installed.",
		                           "Runs in other databases can be started with run_sync(), by hand or from pg_cron.",
		                           &database_name, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY, nullptr, nullptr,
		                           nullptr);
	DefineCustomIntVariable("iterable_audience.max_concurrent_syncs",
	                        "Scheduled runs the scheduler of each database keeps going at once; due syncs beyond it wait for a slot.",
	                        nullptr, &max_concurrent_syncs, 2, 1, 1024, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	MarkGUCPrefixReserved("iterable_audience");
}

}  // namespace ia::settings
