// One run of a sync, performed inside its background worker.
//
// Phases, each in its own short transaction (no transaction is open during a network call):
//   1. claim:    take the sync's run lock, fail runs left 'running' by a crash, insert the run row;
//   2. plan:     stage the audience as the owner, compute the plan (plan_sql.hpp), count it;
//   3. guard:    the removal guard may end the run 'blocked';
//   4. preflight: one GET /api/lists proves the key and the list before anything is sent;
//   5. prepare:  create this run's snapshot table as a copy of the latest, log refused rows;
//   6. send:     unsubscribes, then subscribes, in batches, several requests in flight; each batch's
//                outcome is committed as soon as Iterable answers it;
//   7. finish:   final status and counters, then retention (old logs, old snapshot tables).
// A crash at any point leaves committed batches recorded and the rest to the next run, which
// converges because subscribe and unsubscribe are idempotent.
#pragma once

#include "engine/run_request.hpp"

namespace ia {

// The error of a run that was cancelled, terminated or stopped by a shutdown.
extern const char *const kRunInterruptedError;

// Performs the run; never throws (every failure is recorded on the run row or, when even that is
// impossible, logged).
void perform_run(const RunRequest &request);

}  // namespace ia
