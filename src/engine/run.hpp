// The state of one run and its phases (engine/sync_run.hpp describes them), one file per phase:
//   run_claim.cpp    claim, settle earlier runs
//   run_plan.cpp     plan, removal guard
//   run_send.cpp     send (batches, pacing, answers mapped to records), load ahead
//   run_finish.cpp   finish, retention, settling after an interrupt
//   run_events.cpp   the run of an event sync (rows past the cursor, no snapshot)
//   sync_run.cpp     the order of the phases (perform), perform_run
// What differs between kinds of sync is the kind's (engine/sync_kind.hpp), never tested here.
// Internal to src/engine.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/sync_kind.hpp"
#include "engine/batch_recording.hpp"
#include "engine/memory_usage.hpp"
#include "engine/run_ended.hpp"
#include "engine/run_request.hpp"

namespace ia {

extern const char *const kPlanTable;

class Run {
 public:
	explicit Run(const RunRequest &request) : request_(request) {}
	void perform();
	// Interrupted while sending: builds the run's snapshot now (see run_finish.cpp).
	void settle_after_interrupt();

 private:
	// run_claim.cpp
	bool claim();
	void settle_earlier_runs();
	// run_plan.cpp
	void plan();
	void check_removal_guard();
	void record_refused();
	// run_send.cpp
	void send();
	// run_finish.cpp
	void finish(const std::string &status, const std::string &error);
	void retention();
	void log_phases();
	// run_events.cpp: the whole run of a kind planning past a cursor (SyncKind::Planning::PastCursor)
	void perform_cursor_run();
	// sync_run.cpp
	void report(const std::string &what);
	std::string run_label() const;

	int64_t planned(const SendOperation &op) const;
	int64_t planned_total() const;

	friend class SendLoop;
	friend class EventRun;

	RunRequest request_;
	SyncDefinition sync_;
	const SyncKind *kind_ = nullptr;
	Account account_;
	RunTarget target_;
	std::optional<std::string> previous_snapshot_;
	int next_batch_no_ = 1;
	bool sent_any_ = false;  // a batch was written to the ledger: the run has a snapshot to build
	std::vector<int64_t> planned_;  // per operation of the kind, in its order
	int64_t refused_ = 0;
	int64_t list_size_ = 0;  // records of the latest snapshot
	int64_t failed_ = 0;
	bool failures_possible_ = true;
	bool read_source_ = false;  // prepare_source_read() ran: finish() records what the read saw
	std::vector<std::string> notes_;  // said in the run's error column even when it succeeds
	std::vector<std::pair<const char *, double>> phases_;  // seconds per phase, logged at the end

	template <typename F>
	void timed(const char *phase, F &&f)
	{
		auto start = std::chrono::steady_clock::now();
		f();
		sample_private_memory();
		phases_.emplace_back(phase, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
	}
};

}  // namespace ia
