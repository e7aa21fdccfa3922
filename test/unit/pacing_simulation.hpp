// A simulated Iterable endpoint for the rate controller's tests: a leaky bucket the client is not told
// about (rate and burst, the rate may change mid-run), a fixed latency, and sync runs that send like
// src/engine/sync_run.cpp does (up to max_in_flight batches, each sent when the pacing allows) with the
// HTTP client's retries of a 429 (full-jitter exponential backoff, not paced, every answer reported).
// Simulated time in 1 ms steps: nothing here reads a clock.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/rate_controller.hpp"

namespace sim {

struct Bucket {
	double rate = 20;
	double burst = 2;
	double change_at = 1e18;  // from this time on (seconds into the run), the rate is changed_rate
	double changed_rate = 20;
	double level = 0;
	double last = 0;
	double origin = 1000;     // the simulation's clock starts here (pacing_simulation.cpp)

	double rate_at(double now) const { return now >= change_at ? changed_rate : rate; }
	bool admit(double now)
	{
		level = std::max(0.0, level - (now - last) * rate_at(now));
		last = now;
		if (level + 1 > burst + 1e-9)
			return false;
		level += 1;
		return true;
	}
};

struct Run {
	double start = 0;        // when it begins sending
	int requests = 20;       // batches to send
	int max_in_flight = 4;   // iterable_audience.max_requests_in_flight
	// Results.
	int accepted = 0;        // answered 200 (attempts)
	int limited = 0;         // answered 429 (attempts)
	int failed = 0;          // batches that ran out of attempts
	double first_send = -1;
	double last_answer = -1;
	double seconds() const { return last_answer - first_send; }
};

struct Options {
	double latency_s = 0.1;
	double jitter_s = 0.005;   // a request reaches the bucket up to this long after it is sent (uniform)
	double seconds = 600;      // stop after this long at most
	bool shared = true;        // the runs drive one state (a shared slot); else one state each
	int max_attempts = 5;
	double base_delay_s = 0.5;
	double max_delay_s = 30;
	uint64_t seed = 1;
	bool paced_retries = false; // a 429's retry waits for the pacing (HttpClient::set_retry_gate), no backoff
	double origin = 1000;      // the clock at the simulation's start (later, to go on with a state)
	double sample_every_s = 0; // > 0: record (time, rate) of the first state this often
};

struct Outcome {
	std::vector<Run> runs;
	std::vector<ia::RateState> states;  // at the end (one when shared)
	std::vector<std::pair<double, double>> rate_samples;
	int accepted() const;
	int limited() const;
	int failed() const;
	double seconds() const;  // first send of any run to the last answer of any run
	// Accepted requests per second over the runs' span, as a share of a limit.
	double used(double limit) const { return accepted() / seconds() / limit; }
	double limited_share() const { return static_cast<double>(limited()) / (accepted() + limited()); }
};

// Runs the runs against the bucket; every state starts as `initial` (a fresh or remembered state).
Outcome simulate(std::vector<Run> runs, Bucket bucket, const ia::RateState &initial, const Options &options,
                 const ia::RateTuning &tuning = {});

}  // namespace sim
