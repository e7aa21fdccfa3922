// Adaptive request pacing for one Iterable endpoint of one project, whose rate limit is a leaky bucket
// nobody tells us the size of (and 429s come without Retry-After). Issue 18 replaced the AIMD of
// issue 5, which took a burst limit for the rate (two 429s in the first requests and it fell to about
// 1 request/s, climbing back by 0.5 requests/s per second).
//
//  * Requests are paced from the first one, at `rate` requests/s, with a tolerance of `burst`
//    requests at once (GCRA: the client mirrors the server's bucket). All senders sharing the state
//    (every run of the project, src/iterable/shared_pacing.cpp) share that one budget.
//  * A fresh state starts at the remembered rate of the endpoint (learned by earlier runs), else at
//    its documented limit (a ceiling it never goes above), else at start_rate, doubling while it is
//    the limit on sending ("slow start") until the first 429.
//  * A 429 is judged by the accepted rate: the 200s that arrived over the stream so far (at most the
//    last window_s), per second of that stream. Over a stream too short to tell a rate (under
//    min_estimate_s) a 429 is taken for a burst: the burst tolerance drops to 1 (even spacing), the
//    rate stays. Otherwise the rate drops to `backoff` times the accepted rate (not far below it),
//    once per hold_s (one burst of 429s is one signal).
//  * When 429s stop, the rate returns quickly (recover_per_s of the estimate per second) to the
//    estimate, then probes above it slowly (probe_per_s).
// Times are seconds on a monotonic clock, passed in by the caller (so tests can simulate time).
//
// The state is a fixed-size, trivially copyable struct (no pointer, no allocation): it can live in
// shared memory. The rules (namespace rate_rules) are plain arithmetic on it, noexcept, allocation-free:
// the shared side calls them while holding a spinlock. RateController is one state plus the rules.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ia {

struct RateTuning {
	double start_rate = 20;        // requests/s of a fresh state with nothing known
	double doubling_s = 0.2;       // slow start: the rate doubles this often while it limits sending
	double start_burst = 1.5;      // requests a fresh state lets go at once (1.5: the second half an interval after the first, so the one after them has room for jitter)
	double backoff = 0.97;         // on a 429 judged a rate: this share of the accepted rate
	double min_estimate_s = 0.3;   // a stream shorter than this cannot tell a rate from a burst
	double recover_per_s = 1.0;    // below the estimate: + this share of it per second
	double probe_per_s = 0.01;     // at or above it: + this share of it per second
	double window_s = 2.0;         // how far back the accepted rate is measured (at most kMaxWindowSeconds)
	double min_rate = 0.5;         // never slower than this
	double hold_s = 0.5;           // one decrease per this long at most
	double idle_restart_s = 2.0;   // a pause this long (no request sent) starts a new stream; shorter at high rates (3 / rate, 0.25 s at least)
};

// What a fresh state knows: every field 0 = unknown.
struct RateStart {
	double ceiling = 0;       // documented limit of the endpoint, requests/s
	double remembered = 0;    // rate an earlier run learned (iterable_audience.learned_rate)
	double burst = 0;         // burst tolerance it learned
};

// Accepted answers and sends are counted in rings of 100 ms buckets covering the window (plus the
// bucket the window starts in, counted in proportion).
struct RateState {
	static constexpr double kBucketSeconds = 0.1;
	static constexpr double kMaxWindowSeconds = 2.0;
	static constexpr int kBuckets = 21;  // kMaxWindowSeconds / kBucketSeconds + 1

	struct Bucket {
		int64_t index;   // floor(time / kBucketSeconds) of the events counted here
		uint32_t count;  // events in that 100 ms
	};

	double rate = 10;             // requests/s allowed
	double burst = 1.5;           // requests allowed at once (GCRA tolerance (burst - 1) / rate)
	double ceiling = 0;           // never above this; 0 = none
	double tat = 0;               // GCRA theoretical arrival time of the next request
	double estimate = 0;          // drain rate of the server's bucket as measured; 0 = unknown
	bool slow_start = true;       // nothing known yet and no 429: the rate doubles
	bool learned = false;         // a 429 was judged since start (worth remembering)
	// The current stream: requests sent with no pause over idle_restart_s.
	double stream_start = -1;     // its first send; -1 = none yet
	double first_answer = -1;     // its first answer (a stream's first answer comes a latency after its start)
	double last_send = -1e9;
	int32_t opening_sends = 0;    // requests of its opening burst (sent within the burst tolerance of its start)
	int32_t stream_responses = 0; // answers in it (the first ones answer the opening: answers come in order)
	// 429s of the stream: each says the bucket was full when that request reached it, so the 200s
	// between two of them, per second, are the bucket's drain rate.
	double anchor_at = -1;        // a 429 of the stream the estimate counts from; < stream_start: none
	int64_t anchor_accepted = 0;  // accepted_total then
	double judged_at = -1;        // the last 429 acted on (outside hold_s)
	int64_t judged_accepted = 0;
	double last_decrease = -1e9;
	double last_increase = 0;
	int64_t accepted_total = 0;   // 200s seen
	int64_t limited = 0;          // 429s seen
	Bucket accepted[kBuckets] = {};  // index 0 / count 0: empty
	Bucket sent[kBuckets] = {};
};
static_assert(std::is_trivially_copyable_v<RateState>, "RateState lives in shared memory");
static_assert(std::is_standard_layout_v<RateState>, "RateState lives in shared memory");

namespace rate_rules {

// A fresh state from what is known of the endpoint.
RateState start(const RateTuning &tuning, const RateStart &known) noexcept;

// Whether a request may start now, and if not, in how many seconds.
bool may_send(const RateState &s, double now) noexcept;
double wait_seconds(const RateState &s, double now) noexcept;

// A request starts now: takes the next send slot.
void on_sent(RateState &s, const RateTuning &tuning, double now) noexcept;

// may_send and on_sent in one step (for a state shared by several senders: the check and the
// reservation must happen under one lock). True when the caller may start a request now and the
// slot is taken; false (nothing changed) otherwise.
bool try_send(RateState &s, const RateTuning &tuning, double now) noexcept;

// Called for every answered attempt (retries included).
void on_response(RateState &s, const RateTuning &tuning, double now, bool rate_limited) noexcept;

// Accepted answers per second over the window ending at now.
double accepted_rate(const RateState &s, const RateTuning &tuning, double now) noexcept;

// The rate worth remembering for the next run of the endpoint (0 = nothing learned).
double rate_to_remember(const RateState &s) noexcept;

}  // namespace rate_rules

// One process's controller: a state of its own and the rules.
class RateController {
 public:
	using Tuning = RateTuning;

	RateController() : state_(rate_rules::start(tuning_, {})) {}
	explicit RateController(Tuning tuning, RateStart known = {})
	    : tuning_(tuning), state_(rate_rules::start(tuning_, known)) {}

	bool may_send(double now) const { return rate_rules::may_send(state_, now); }
	double wait_seconds(double now) const { return rate_rules::wait_seconds(state_, now); }

	void on_sent(double now) { rate_rules::on_sent(state_, tuning_, now); }
	bool try_send(double now) { return rate_rules::try_send(state_, tuning_, now); }
	// Called for every answered attempt (retries included).
	void on_response(double now, bool rate_limited) { rate_rules::on_response(state_, tuning_, now, rate_limited); }

	// Requests per second allowed now.
	double rate() const { return state_.rate; }

	const RateState &state() const { return state_; }
	RateState &state() { return state_; }
	const Tuning &tuning() const { return tuning_; }

 private:
	Tuning tuning_;
	RateState state_;
};

}  // namespace ia

#include "core/cpp_only.hpp"
