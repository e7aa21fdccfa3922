// Live progress of a run (sql-api.md "Health, progress, drift"): the phase it is in and the records
// it will handle, kept on its sync_runs row for the view sync_progress (the counters of records done
// are updated as Iterable answers each batch: batch_recording.hpp); and the NOTICEs that run_sync()
// raises while it waits for a long run.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace ia {

// Records the phase the run enters: 'planning', 'preflight', 'sending', 'finishing' (a run starts
// 'starting'). Its own short transaction: call between phases, with no transaction open.
void record_phase(int64_t run_id, const char *phase);

// Records how many records the run sends or refuses (sync_runs.records_planned), its own transaction.
void record_planned_records(int64_t run_id, int64_t records);

// While run_sync() waits for its worker: a NOTICE about every 5 seconds (none for a run that ends
// sooner) with the phase, the records done, the share done and an estimate of the time left, from
// the view sync_progress. client_min_messages silences them as any NOTICE.
class ProgressNotices {
 public:
	ProgressNotices(int64_t run_id, std::string sync_name);
	// Call often while waiting (inside the caller's transaction, SPI connected): samples the run's
	// progress once a second and raises a NOTICE when one is due.
	void poll();

 private:
	using Clock = std::chrono::steady_clock;
	struct Sample {
		Clock::time_point at;
		int64_t done;
	};

	int64_t run_id_;
	std::string sync_name_;
	Clock::time_point started_;
	Clock::time_point next_sample_;
	Clock::time_point next_notice_;
	std::optional<Sample> sending_since_;  // the first sample taken while the run was sending
	bool checked_view_ = false;
	bool available_ = true;  // false: this database's extension has no sync_progress yet (not updated)
};

}  // namespace ia
