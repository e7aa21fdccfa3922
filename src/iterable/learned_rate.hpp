// Rates the pacing learned, kept across restarts (issue 18): iterable_audience.learned_rate holds one
// row per (account, endpoint), written when a run's pacing ends and read when a shared slot (or a
// run's own controller) starts, so the next run of any sync of that project starts at it.
//
// Both are best effort and never fail a run: without the table (an extension not yet updated to
// 0.2.0), or on any error, nothing is read or written (a warning is logged for a failed write).
// Each runs in a short transaction of its own, so call them only between transactions (the send loop
// of a run worker); inside a transaction they do nothing.
#pragma once

#include <cstdint>
#include <string>

namespace ia::learned_rate {

struct Remembered {
	double rate = 0;   // requests/s; 0 = nothing remembered
	double burst = 0;  // requests at once; 0 = unknown
};

Remembered read(int64_t account_id, const std::string &endpoint) noexcept;
void write(int64_t account_id, const std::string &endpoint, double rate, double burst) noexcept;

}  // namespace ia::learned_rate
