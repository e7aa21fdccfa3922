// Adaptive request pacing for one Iterable project, whose rate limit is a leaky bucket nobody tells
// us the size of (and 429s come without Retry-After): AIMD on the rate of requests.
//
//  * Until the first 429 nothing is paced (the number of requests in flight is the only limit).
//  * On a 429, the rate drops to a fraction of what Iterable accepted over the last two seconds,
//    at most once per half second (one burst of 429s is one signal).
//  * While answers come back accepted, the rate grows additively, slowly, probing for more.
// Times are seconds on a monotonic clock, passed in by the caller (so tests can simulate time).
//
// The state is a fixed-size, trivially copyable struct (no pointer, no allocation): it can live in
// shared memory, where every run of the same Iterable project drives one state (src/shared_pacing.cpp).
// The rules (namespace rate_rules) are plain arithmetic on it, noexcept, allocation-free: the shared
// side calls them while holding a spinlock. RateController is one state plus the rules, for one process.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

namespace ia {

struct RateTuning {
	double decrease = 0.85;        // multiplicative decrease on a 429
	double increase_per_s = 0.5;   // additive increase, requests/s per second
	double window_s = 2.0;         // how far back the accepted rate is measured (at most kMaxWindowSeconds)
	double min_rate = 0.5;         // never slower than this
	double hold_s = 0.5;           // one decrease per this long at most
};

// Accepted answers are counted in a ring of 100 ms buckets covering the window (plus the bucket the
// window starts in, counted in proportion).
struct RateState {
	static constexpr double kBucketSeconds = 0.1;
	static constexpr double kMaxWindowSeconds = 2.0;
	static constexpr int kBuckets = 21;  // kMaxWindowSeconds / kBucketSeconds + 1

	struct Bucket {
		int64_t index;   // floor(time / kBucketSeconds) of the answers counted here
		uint32_t count;  // accepted answers in that 100 ms
	};

	double rate = std::numeric_limits<double>::infinity();  // requests/s allowed; infinity until the first 429
	double next_allowed = 0;   // no request starts before this time
	double last_decrease = -1e9;
	double last_increase = 0;
	Bucket accepted[kBuckets] = {};  // index 0 / count 0: empty
};
static_assert(std::is_trivially_copyable_v<RateState>, "RateState lives in shared memory");
static_assert(std::is_standard_layout_v<RateState>, "RateState lives in shared memory");

namespace rate_rules {

// Whether a request may start now, and if not, in how many seconds.
bool may_send(const RateState &s, double now) noexcept;
double wait_seconds(const RateState &s, double now) noexcept;

// A request starts now: takes the next send slot.
void on_sent(RateState &s, double now) noexcept;

// may_send and on_sent in one step (for a state shared by several senders: the check and the
// reservation must happen under one lock). True when the caller may start a request now and the
// slot is taken; false (nothing changed) otherwise.
bool try_send(RateState &s, double now) noexcept;

// Called for every answered attempt (retries included).
void on_response(RateState &s, const RateTuning &tuning, double now, bool rate_limited) noexcept;

// Accepted answers per second over the window ending at now.
double accepted_rate(const RateState &s, const RateTuning &tuning, double now) noexcept;

}  // namespace rate_rules

// One process's controller: a state of its own and the rules.
class RateController {
 public:
	using Tuning = RateTuning;

	RateController() = default;
	explicit RateController(Tuning tuning) : tuning_(tuning) {}

	bool may_send(double now) const { return rate_rules::may_send(state_, now); }
	double wait_seconds(double now) const { return rate_rules::wait_seconds(state_, now); }

	void on_sent(double now) { rate_rules::on_sent(state_, now); }
	// Called for every answered attempt (retries included).
	void on_response(double now, bool rate_limited) { rate_rules::on_response(state_, tuning_, now, rate_limited); }

	// Requests per second allowed now; infinity until the first 429.
	double rate() const { return state_.rate; }

	const RateState &state() const { return state_; }
	const Tuning &tuning() const { return tuning_; }

 private:
	Tuning tuning_;
	RateState state_;
};

}  // namespace ia

#include "core/cpp_only.hpp"
