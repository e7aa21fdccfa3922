// One pass of the scheduler over its database, in C++ behind a noexcept boundary:
//   * when the extension is not installed (never was, or was dropped): the pass says so and the
//     scheduler exits, freeing its worker slot; the launcher looks again on CREATE EXTENSION;
//   * the first time the extension is seen: runs left 'running' whose sync's run lock is free (their
//     worker is gone: crash or restart) are marked failed, 'server restarted';
//   * each due sync (not paused, next_run_at <= now()) either gets a run worker (at most
//     iterable_audience.max_concurrent_syncs of ours at a time), or is skipped because its previous
//     run is still going (LOG "skipped: still running"), or waits for a free slot. A started or
//     skipped sync's next_run_at moves to its next due time at once, so nothing spins;
//   * the answer is how long to sleep: until the earliest next_run_at, at most 60 s.
// Each step is a short transaction; none is open while the scheduler sleeps or starts workers.
#pragma once

namespace ia::scheduler {

struct PassOutcome {
	long sleep_ms;            // how long to sleep before the next pass
	bool extension_missing;   // the extension is not installed here: the scheduler exits
};

// Never throws: an error is logged, its transaction rolled back, and the pass asks for a pause.
PassOutcome run_pass(const char *database_name) noexcept;

}  // namespace ia::scheduler
