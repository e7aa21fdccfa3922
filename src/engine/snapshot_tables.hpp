// Snapshot tables (iterable_audience_snapshots.*): the list as Iterable acknowledged it, one table
// per run that sent something. Each is tied to the extension (tie_snapshot_table), so DROP EXTENSION
// removes it too, but is not a member of it, so pg_dump dumps it whole (definition, grants, rows).
//
// A run's snapshot is built in one statement from the previous snapshot and the run's batches
// (iterable_audience.sync_batch, committed before each request went out, answered after):
//   * a record of an answered batch that Iterable accepted takes the batch's values (a subscribe),
//     or leaves the snapshot (an unsubscribe);
//   * a record Iterable refused keeps what the previous snapshot had (nothing, for a new record);
//   * a record of a batch whose answer was never recorded (a crash, a kill -9, an interrupt), or
//     whose failure does not tell whether Iterable applied it (a timeout, a 5xx, an unreadable 200),
//     is *in doubt*: it is kept with row_hash 0, which matches no audience row, so the next run
//     subscribes it again if it is in the audience and unsubscribes it if not.
// The run builds its snapshot when it ends; a run that did not get that far (crash, interrupt) is
// settled so by the next run of the sync before it plans. Either way the records Iterable may have
// applied are never lost, and the build costs one pass, not a write per record per batch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ia {

constexpr int64_t kInDoubtHash = 0;  // row_hash of a snapshot record whose last request has no known outcome

// SELECT yielding the snapshot after run `run_id`: `previous` (a qualified table, or nullopt for
// none) with the run's sent batches applied. Columns: record_key, email, user_id, row_hash,
// synced_at, run_id.
std::string settled_snapshot_sql(const std::optional<std::string> &previous, int64_t run_id);

// Ties the snapshot table iterable_audience_snapshots.<table_name> to the extension with an
// auto-extension dependency (pg_depend deptype 'x', what ALTER ... DEPENDS ON EXTENSION records):
// DROP EXTENSION drops it, without CASCADE. Not membership: pg_dump leaves the definition of an
// extension member out (CREATE EXTENSION is expected to make it), and CREATE EXTENSION cannot make
// tables created at run time. pg_dump does not carry this dependency either, so a restore ties the
// tables again when it loads iterable_audience.snapshot (a trigger on it), and every run ties its
// sync's (after pg_upgrade or a restore without triggers). Takes the lock ALTER EXTENSION ADD takes.
// False when the table is missing or tied already.
bool tie_snapshot_table(const std::string &table_name);

// Ties the registered snapshot tables (of one sync, or all) that are not tied yet; how many it tied.
int tie_registered_snapshot_tables(std::optional<int64_t> sync_id);

// Creates the (empty) snapshot table of run `run_id` before it sends, tied to the extension, so that
// DROP EXTENSION, which may be waiting for the run, never has to wait on it in turn. Registered as
// not filled; grants the sync's owner SELECT on it. Returns its qualified, quoted name.
std::string create_snapshot_shell(int64_t sync_id, const std::string &sync_name, int64_t run_id,
                                  unsigned int sync_owner);

// Fills the snapshot table of run `run_id` (settled_snapshot_sql; creates it when missing), marks
// it filled, points the run's sync_runs.snapshot_table at it and marks the run settled, and drops
// the run's batches that were kept only for this (the sync keeps no logs). Returns its name.
// Runs as the extension owner, inside the caller's transaction.
std::string fill_run_snapshot(int64_t sync_id, const std::string &sync_name, int64_t run_id, unsigned int sync_owner,
                              const std::optional<std::string> &previous);

// Runs of the sync that sent batches after its latest snapshot (ended before building theirs), oldest first.
std::vector<int64_t> unsettled_runs(int64_t sync_id);

// The latest snapshot's record count, 0 when there is none.
int64_t latest_snapshot_rows(int64_t sync_id);

// Drops all but the newest `keep` snapshot tables of a sync (keep = 0: all of them).
void drop_snapshot_tables(int64_t sync_id, int keep);

}  // namespace ia
