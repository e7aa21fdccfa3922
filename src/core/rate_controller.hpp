// Adaptive request pacing for one Iterable project, whose rate limit is a leaky bucket nobody tells
// us the size of (and 429s come without Retry-After): AIMD on the rate of requests.
//
//  * Until the first 429 nothing is paced (the number of requests in flight is the only limit).
//  * On a 429, the rate drops to a fraction of what Iterable accepted over the last two seconds,
//    at most once per half second (one burst of 429s is one signal).
//  * While answers come back accepted, the rate grows additively, slowly, probing for more.
// Times are seconds on a monotonic clock, passed in by the caller (so tests can simulate time).
#pragma once

#include <deque>
#include <limits>

namespace ia {

class RateController {
 public:
	struct Tuning {
		double decrease = 0.85;        // multiplicative decrease on a 429
		double increase_per_s = 0.5;   // additive increase, requests/s per second
		double window_s = 2.0;         // how far back the accepted rate is measured
		double min_rate = 0.5;         // never slower than this
		double hold_s = 0.5;           // one decrease per this long at most
	};

	RateController() = default;
	explicit RateController(Tuning tuning) : tuning_(tuning) {}

	// Whether a request may start now, and if not, in how many seconds.
	bool may_send(double now) const { return now >= next_allowed_; }
	double wait_seconds(double now) const { return now >= next_allowed_ ? 0.0 : next_allowed_ - now; }

	void on_sent(double now);
	// Called for every answered attempt (retries included).
	void on_response(double now, bool rate_limited);

	// Requests per second allowed now; infinity until the first 429.
	double rate() const { return rate_; }

 private:
	void forget_before(double t);

	Tuning tuning_;
	double rate_ = std::numeric_limits<double>::infinity();
	double next_allowed_ = 0;
	double last_decrease_ = -1e9;
	double last_increase_ = 0;
	std::deque<double> accepted_;  // times of accepted answers within the window
};

}  // namespace ia

#include "core/cpp_only.hpp"
