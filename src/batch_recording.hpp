// Recording what Iterable said about one batch, in one short transaction: sync log rows, snapshot
// rows (only what Iterable acknowledged), failed records to retry, and the run's counters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ia {

namespace pg {
struct SqlResult;  // pg/spi.hpp (no PostgreSQL header here: src/core headers may follow this one)
}

struct RowFailure {
	int64_t seq;
	std::string error_code;
	std::string error_message;
	bool retryable;
};

struct BatchOutcome {
	// The batch's plan rows: those of its class (0 unsubscribes, 1 subscribes) with
	// after_seq < seq <= last_seq.
	int64_t after_seq;
	int64_t last_seq;
	int64_t rows;
	bool unsubscribe;
	std::vector<RowFailure> failures;  // rows not listed here succeeded
	int64_t requests;                  // HTTP attempts spent
	int64_t rate_limited;              // of which answered 429
	// Whether Iterable may have applied the batch although it failed (a timeout, a dropped connection,
	// a 5xx, an unreadable 200, on any attempt): its records then stay in doubt in the snapshot.
	bool outcome_unknown = false;
};

struct RunTarget {
	int64_t run_id;
	int64_t sync_id;
	std::string plan_table;      // pg_temp table holding the plan
	std::string snapshot_table;  // this run's snapshot table (qualified, quoted)
	bool keep_logs;
	bool failures_possible;      // record_failure may hold rows of this sync (else no need to clear them)
};

// Snapshot rows in doubt: a batch's records are marked in the snapshot (row_hash kInDoubtHash, a new
// record inserted so) in a transaction committed durably *before* the batch is sent, and settled when
// Iterable's answer is recorded. Whatever ends the run in between (a crash, a kill -9, a lost commit,
// an interrupt, an answer that does not tell) leaves them in doubt: the next run's plan sees a hash
// that matches no audience row, so it subscribes them again when they are in the audience and
// unsubscribes them when they are not. A subscribe applied but unacknowledged is thus never left on
// the list after its record leaves the audience, nor an unsubscribe applied but unacknowledged
// mistaken for a member when its record comes back unchanged.
constexpr int64_t kInDoubtHash = 0;

// The next `size` plan rows of a class after `after_seq`, marked in doubt in the snapshot; commits
// durably (synchronous_commit on for the transaction). Columns: seq, email, user_id, data_fields.
// Requires SPI; runs its own transaction.
pg::SqlResult load_and_mark_batch(const RunTarget &target, bool unsubscribe, int64_t after_seq, int64_t size);

// Requires an open transaction with SPI.
void record_batch(const RunTarget &target, const BatchOutcome &outcome);

// Logs the rows refused before sending (valid = false in the plan) and remembers them as failed.
// Returns how many there were.
int64_t record_refused_rows(const RunTarget &target);

}  // namespace ia
