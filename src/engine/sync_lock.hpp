// One run per sync at a time: an advisory lock keyed on the sync id. A run holds it for its whole
// life (session level, in its worker); DDL-like changes (alter, drop, reset) take it for their
// transaction and are refused while a run holds it.
#pragma once

#include <cstdint>
#include <string>

namespace ia {

constexpr int kSyncLockClass = 0x1A5D;  // first key of iterable_audience's advisory locks

// Takes the lock for the current transaction or throws UserError saying the sync is running.
class SyncLock {
 public:
	SyncLock(int64_t sync_id, const std::string &what);
};

// Session-level lock for a run: true when taken.
bool try_lock_sync_for_run(int64_t sync_id);
void unlock_sync_for_run(int64_t sync_id);

// The second key of a sync's advisory lock.
int32_t sync_lock_key(int64_t sync_id);

}  // namespace ia
