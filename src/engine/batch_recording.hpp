// A run's batches in iterable_audience.sync_batch (the run's ledger and its logs): written and
// committed durably before the request goes out, answered in one short transaction after.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/sync_kind.hpp"

namespace ia {

namespace pg {
struct SqlResult;  // pg/spi.hpp (no PostgreSQL header here: src/core headers may follow this one)
}

struct RowFailure {
	size_t index;  // position in the batch
	std::string error_code;
	std::string error_message;
	bool retryable;
};

struct BatchOutcome {
	int batch_no;
	int64_t rows;
	const char *done_column;           // sync_runs column counting the records that succeeded
	std::vector<RowFailure> failures;  // rows not listed here succeeded
	int64_t requests;                  // HTTP attempts spent
	int64_t rate_limited;              // of which answered 429
	// Whether Iterable may have applied the failed records although they failed (a timeout, a
	// dropped connection, a 5xx, an unreadable 200, on any attempt): they are then in doubt.
	bool outcome_unknown = false;
};

struct RunTarget {
	int64_t run_id;
	int64_t sync_id;
	std::string plan_table;  // pg_temp table holding the plan
	bool keep_logs;
	bool failures_possible;  // record_failure may hold rows of this sync (else no need to clear them)
	const char *refused_action;  // sync_batch.action of the rows refused before sending
};

// A batch as written to the ledger: its records' email, user_id and data_fields (as text), in the
// order they are sent, and where in the plan table its last row is (a ctid, as text).
struct LoadedBatch {
	int batch_no;
	std::string last_row;
	std::vector<std::optional<std::string>> emails, user_ids, data_fields;
};

// Reads consecutive batches of an operation's class from the plan table, after its row `after_row` (a ctid;
// "(0,0)" to start), of sizes[0], sizes[1] ... rows (a batch comes back shorter, or not at all,
// when the class runs out), numbered from `first_batch_no`, and writes each as one row of the run's
// ledger, all committed durably together (synchronous_commit on for the transaction, one WAL flush
// for all) before returning, so that whatever happens once a request is out, the next run knows
// these records may have been applied (snapshot_tables.hpp). Runs its own transaction.
//
// The plan table is read in its physical order, by ctid range, without an index: it was written in
// one pass in seq order and is never updated but to move rows to classes 2 and 3 (never read here).
// With op.limits.max_body_bytes, a batch also ends before the records' JSON would pass the cap
// (record_bytes_sql()); records alone over it were refused 'too_large' at planning.
std::vector<LoadedBatch> load_batches(const RunTarget &target, int first_batch_no, const SendOperation &op,
                                      const std::string &after_row, const std::vector<int64_t> &sizes);

// Records, as one answered ledger row that sync_logs does not show, the plan rows of an operation
// sent nowhere (SendOperation::path nullptr: a user sync's records that left its source), so that
// the run's snapshot forgets them. Returns how many there were. Runs its own transaction.
int64_t record_local_operation(const RunTarget &target, int batch_no, const SendOperation &op);

// The bytes a plan row takes in a request body at most (its JSON, with room for per-record flags),
// as an SQL expression over the plan table's columns.
std::string record_bytes_sql();
// Bytes of a request body around its records at most.
constexpr size_t kBodyEnvelopeBytes = 64;

// Removes from the ledger batches that were written but never sent (a run that stops sending
// early): nothing of them can have been applied. Requires an open transaction with SPI.
void forget_unsent_batches(const RunTarget &target, const std::vector<int> &batch_nos);

// Records Iterable's answer to a batch: per-record error codes, remembered failures, the run's
// counters. Requires an open transaction with SPI.
void record_batch(const RunTarget &target, const BatchOutcome &outcome);

// Logs the rows refused before sending (batch_class 2) and remembers them as failed.
// Returns how many there were.
int64_t record_refused_rows(const RunTarget &target);

}  // namespace ia
