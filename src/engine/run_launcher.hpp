// Starting the background worker that performs one run, and waiting for it.
#pragma once

#include <string>

#include "engine/run_request.hpp"

struct BackgroundWorkerHandle;

namespace ia {

// Registers a dynamic background worker for the run; throws UserError when no slot is free.
BackgroundWorkerHandle *start_run_worker(const RunRequest &request, const std::string &sync_name, bool notify_me);

// Waits until the worker has exited. A cancel or terminate request stops the worker (which records
// the run as interrupted) and then throws pg::Interrupted.
void wait_for_run_worker(BackgroundWorkerHandle *handle);

// A fresh run id from sync_runs' identity sequence (so the caller knows the run before it starts).
int64_t allocate_run_id();

// Marks this sync's runs still 'running' as failed: call only while holding the sync's run lock.
void fail_stale_runs(int64_t sync_id);

}  // namespace ia
