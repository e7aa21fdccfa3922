// Recording what Iterable said about one batch, in one short transaction: sync log rows, snapshot
// rows (only what Iterable acknowledged), failed records to retry, and the run's counters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ia {

struct RowFailure {
	int64_t seq;
	std::string error_code;
	std::string error_message;
	bool retryable;
};

struct BatchOutcome {
	std::vector<int64_t> seqs;  // the plan rows of the batch
	bool unsubscribe;
	std::vector<RowFailure> failures;  // rows not listed here succeeded
	int64_t requests;                  // HTTP attempts spent
	int64_t rate_limited;              // of which answered 429
};

struct RunTarget {
	int64_t run_id;
	int64_t sync_id;
	std::string plan_table;      // pg_temp table holding the plan
	std::string snapshot_table;  // this run's snapshot table (qualified, quoted)
	bool keep_logs;
	bool failures_possible;      // record_failure may hold rows of this sync (else no need to clear them)
};

// Requires an open transaction with SPI.
void record_batch(const RunTarget &target, const BatchOutcome &outcome);

// Logs the rows refused before sending (valid = false in the plan) and remembers them as failed.
// Returns how many there were.
int64_t record_refused_rows(const RunTarget &target);

}  // namespace ia
