// What run_sync() (or the scheduler) hands to the worker that performs a run: plain data copied
// into bgw_extra, so no pointer crosses processes.
#pragma once

#include <cstdint>

namespace ia {

struct RunRequest {
	int64_t sync_id;
	int64_t run_id;
	uint32_t database_id;
	uint32_t worker_role;  // the extension owner: the worker connects as it
	uint8_t scheduled;     // trigger: 1 = 'schedule', 0 = 'manual'
	uint8_t force;         // send a run the removal guard would block
	// The caller's settings, so SET in the calling session applies to the run.
	int32_t batch_size;
	int32_t max_requests_in_flight;
	int32_t connect_timeout_ms;
	int32_t request_timeout_ms;
	int32_t max_attempts;
	int32_t retry_base_delay_ms;
	int32_t retry_max_delay_ms;
	int32_t max_response_bytes;
};

// Fills the settings part of a request from this process's GUCs.
void capture_settings(RunRequest &request);
// Applies them in the worker.
void apply_settings(const RunRequest &request);

}  // namespace ia
