// The extension's GUCs (iterable_audience.*), defined in _PG_init.
#pragma once

namespace ia::settings {

extern int connect_timeout_ms;
extern int request_timeout_ms;
extern int max_response_bytes;
extern int max_attempts;
extern int retry_base_delay_ms;
extern int retry_max_delay_ms;
extern char *ca_file;
extern int batch_size;
extern int max_requests_in_flight;
extern int plan_work_mem_kb;  // -1: work_mem
// Scheduler (docs/scheduler.md)
extern char *database_name;     // empty: every database (NULL without preloading)
extern int max_concurrent_syncs;

void define();

}  // namespace ia::settings
