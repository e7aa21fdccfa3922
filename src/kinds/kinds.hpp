// The kinds of sync (engine/sync_kind.hpp), one file each, and what their preflights share.
#pragma once

#include "engine/run_ended.hpp"
#include "engine/sync_kind.hpp"

namespace ia {

const SyncKind &list_kind();
const SyncKind &user_kind();
const SyncKind &event_kind();

// GET /api/lists, the cheapest call that proves the API key (and reaches Iterable) before anything
// is sent; counted in the run's counters. Throws RunEnded when it fails; returns the answer.
HttpResult check_api_key(const Account &account, int64_t run_id);

}  // namespace ia
