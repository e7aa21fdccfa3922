// Starting the background worker that performs one run, and waiting for it.
#pragma once

#include <functional>
#include <string>

#include "engine/run_request.hpp"

struct BackgroundWorkerHandle;

namespace ia {

// Registers a dynamic background worker for the run; throws UserError when no slot is free.
BackgroundWorkerHandle *start_run_worker(const RunRequest &request, const std::string &sync_name, bool notify_me);

// Waits until the worker has exited. A cancel or terminate request stops the worker (which records
// the run as interrupted) and then throws pg::Interrupted. while_waiting, when given, is called
// between waits (every 200 ms at most; run_sync() raises its progress NOTICEs there).
void wait_for_run_worker(BackgroundWorkerHandle *handle, const std::function<void()> &while_waiting = {});

// A fresh run id from sync_runs' identity sequence (so the caller knows the run before it starts).
int64_t allocate_run_id();

// Marks this sync's runs still 'running' as failed: call only while holding the sync's run lock.
void fail_stale_runs(int64_t sync_id);

}  // namespace ia
