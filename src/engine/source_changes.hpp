// Knowing that a sync's source has not changed since its last run, without reading it (README "Idle
// runs and continuous syncs"). A statement-level trigger on each table the source reads logs (table,
// writing transaction) in iterable_audience.source_change; a run records the MVCC snapshot its read
// started from (iterable_audience.source_watch). The source is unchanged iff no logged transaction
// of its tables is invisible to that snapshot and no definition it depends on differs
// (iterable_audience.source_fingerprint). Sources that cannot be tracked exactly always run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "definitions/sync_definition.hpp"

namespace ia {

// In a transaction, before planning (earlier runs settled): the run that last read the source when
// this run has nothing to do (that run sent all of it, nothing is in doubt or to retry, the sync was
// not altered or reset, and the source is unchanged since); nullopt otherwise.
std::optional<int64_t> idle_since_run(const SyncDefinition &sync);

// The idle run's row: source_read false, nothing planned, the audience's size as that run read it.
// Rows that run refused are still refused (unchanged) but not logged again: the idle run's counters
// stay equal to its logs (none), and it ends 'succeeded'. The worker's later commits do not wait for
// the disk (synchronous_commit off: an idle run lost in a crash loses nothing).
void record_idle_run(int64_t run_id, int64_t read_run_id);

// Its own transaction, just before the transaction that reads the source: resolves the source's
// relations, installs missing change triggers and records, as pending, a snapshot taken after that.
// A failure here only makes the source untracked for this run.
void prepare_source_read(const SyncDefinition &sync, int64_t run_id);

// In the finishing transaction of a run that read the source, after its snapshot table is built:
// the pending read becomes the last read. converged: the run ended 'succeeded' or
// 'succeeded_with_failures' and its only failures were rows refused before sending.
void record_source_read(const SyncDefinition &sync, int64_t run_id, bool converged);

// Deletes the change log rows every recorded snapshot sees. Own transaction; skipped (WARNING)
// when the log is busy.
void prune_source_changes();

// drop_sync / alter_sync (any definition change): forgets the sync's reads and drops the change
// triggers no other sync needs. Requires an SPI session, as the extension owner.
void forget_source_reads(int64_t sync_id);

// repair_list: the snapshot changed under the last read, so the next run reads the source.
void invalidate_source_read(int64_t sync_id);

}  // namespace ia
