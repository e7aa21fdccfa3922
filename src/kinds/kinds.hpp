// The kinds of sync (engine/sync_kind.hpp), one file each, and what their preflights share.
#pragma once

#include "engine/run_ended.hpp"
#include "engine/sync_kind.hpp"

namespace ia {

const SyncKind &list_kind();
const SyncKind &user_kind();

// Adds a call's attempts (and its 429s) to the run's counters. Runs its own transaction.
void count_calls(int64_t run_id, const HttpResult &result);

// The run's end when a call made before sending failed: the key refused, or Iterable unreachable.
RunEnded preflight_failure(const Account &account, const HttpResult &result);

}  // namespace ia
