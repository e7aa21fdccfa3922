#include "core/rate_controller.hpp"

#include <algorithm>
#include <cmath>

namespace ia::rate_rules {

namespace {

constexpr double kBucketSeconds = RateState::kBucketSeconds;
constexpr int kBuckets = RateState::kBuckets;
constexpr double kMaxRate = 1e6;       // "unpaced" in practice; keeps the arithmetic finite
constexpr double kMaxGrowthStep = 0.5;  // seconds of growth one answer may apply (after a pause)
constexpr int64_t kMinCounted = 5;    // 200s an estimate counts at least (unless over a whole window)
constexpr double kUnmeasuredBackoff = 0.9;
constexpr double kUnmeasuredProbe = 0.1;  // per second
constexpr double kRememberedShare = 0.99;  // a remembered rate is measured from 200s: rather low than high already
constexpr double kClockSlack = 1e-9;
constexpr double kMinPause = 0.25;      // seconds without a send that end a stream, at least
constexpr double kInstant = 0.01;
constexpr double kOpening = 0.02;       // answers this close to the first one answer the opening burst       // answers this close to the first one of a stream came at once

int64_t
bucket_of(double t) noexcept
{
	return static_cast<int64_t>(std::floor(t / kBucketSeconds));
}

void
count(RateState::Bucket (&ring)[kBuckets], double now) noexcept
{
	int64_t index = bucket_of(now);
	int64_t slot = index % kBuckets;
	if (slot < 0)
		slot += kBuckets;
	RateState::Bucket &b = ring[slot];
	// A slot holds the newest bucket that maps to it; an older one is over (outside the window).
	// (index < b.index only if times went backwards: counted in the newer bucket, close enough.)
	if (b.index < index) {
		b.index = index;
		b.count = 0;
	}
	if (b.count < UINT32_MAX)
		b.count++;
}

// Events per second over (now - window, now]; window in [kBucketSeconds, kMaxWindowSeconds].
double
rate_over(const RateState::Bucket (&ring)[kBuckets], double window, double now) noexcept
{
	if (!(window >= kBucketSeconds))  // also NaN
		window = kBucketSeconds;
	window = std::min(window, RateState::kMaxWindowSeconds);
	const int64_t last = bucket_of(now);
	const double start = now - window;
	// The bucket the window starts in counts in proportion to the part of it inside the window.
	const int64_t first = std::max(bucket_of(start), last - (kBuckets - 1));
	const double first_share =
	    std::clamp((static_cast<double>(first + 1) * kBucketSeconds - start) / kBucketSeconds, 0.0, 1.0);
	double n = 0;
	for (const RateState::Bucket &b : ring) {
		if (b.count == 0 || b.index < first || b.index > last)
			continue;
		n += b.index == first ? first_share * b.count : static_cast<double>(b.count);
	}
	return n / window;
}

// How long the current stream of requests has lasted, at most the window.
double
stream_seconds(const RateState &s, const RateTuning &tuning, double now) noexcept
{
	if (s.stream_start < 0)
		return 0;
	return std::clamp(now - s.stream_start, 0.0, std::min(tuning.window_s, RateState::kMaxWindowSeconds));
}

double
capped(const RateState &s, double rate) noexcept
{
	if (s.ceiling > 0)
		rate = std::min(rate, s.ceiling);
	return std::clamp(rate, 1e-3, kMaxRate);
}

// Whether the rate (not the number of requests in flight, nor a lack of work) limits sending now:
// the requests sent over the stream came at half the rate or more. Only then is growing it a test.
bool
rate_bound(const RateState &s, const RateTuning &tuning, double now) noexcept
{
	double w = std::max(stream_seconds(s, tuning, now), kBucketSeconds);
	return rate_over(s.sent, w, now) >= 0.5 * s.rate;
}

}  // namespace

RateState
start(const RateTuning &tuning, const RateStart &known) noexcept
{
	RateState s;
	s.ceiling = known.ceiling > 0 && std::isfinite(known.ceiling) ? known.ceiling : 0;
	s.burst = known.burst >= 1 && std::isfinite(known.burst) ? known.burst : std::max(1.0, tuning.start_burst);
	if (known.remembered > 0 && std::isfinite(known.remembered)) {
		// Just below what was measured (kRememberedShare): a bucket paced at exactly its rate has no room for jitter.
		s.estimate = capped(s, known.remembered);
		s.rate = capped(s, known.remembered * kRememberedShare);
		s.slow_start = false;
	} else if (s.ceiling > 0) {
		s.rate = s.ceiling;
		s.estimate = s.ceiling;
		s.slow_start = false;
	} else {
		s.rate = capped(s, tuning.start_rate > 0 ? tuning.start_rate : 10);
		s.slow_start = true;
	}
	return s;
}

bool
may_send(const RateState &s, double now) noexcept
{
	return wait_seconds(s, now) <= 0;
}

double
wait_seconds(const RateState &s, double now) noexcept
{
	double wait = s.tat - (s.burst - 1) / s.rate - now;
	return wait > kClockSlack ? wait : 0.0;  // (rounding of the arithmetic is not a wait)
}

void
on_sent(RateState &s, const RateTuning &tuning, double now) noexcept
{
	// A pause long enough for the server's bucket to drain a few requests ends the stream: what the
	// 200s measure across it would not be the bucket's rate.
	const double pause = std::clamp(3.0 / s.rate, kMinPause, tuning.idle_restart_s);
	if (s.stream_start < 0 || now - s.last_send > pause) {
		s.stream_start = now;
		s.opening_sends = 0;
		s.stream_responses = 0;
		s.last_increase = std::max(s.last_increase, now);  // growth counts from the stream's start
		// A new stream opens with a burst into a bucket that may be full: not above the estimate.
		if (s.estimate > 0 && s.rate > s.estimate * kRememberedShare) {
			s.rate = capped(s, s.estimate * kRememberedShare);
			s.tat = std::max(s.tat, now);
		}
	}
	s.last_send = now;
	if (now - s.stream_start <= (s.burst - 1) / s.rate + kInstant && s.opening_sends < INT32_MAX)
		s.opening_sends++;
	s.tat = std::max(s.tat, now) + 1.0 / s.rate;
	count(s.sent, now);
}

bool
try_send(RateState &s, const RateTuning &tuning, double now) noexcept
{
	if (!may_send(s, now))
		return false;
	on_sent(s, tuning, now);
	return true;
}

double
accepted_rate(const RateState &s, const RateTuning &tuning, double now) noexcept
{
	return rate_over(s.accepted, tuning.window_s, now);
}

namespace {

// An estimate of the drain rate from the 429s of the stream, updated at every 429; < 0: none yet.
double
measure_at_429(RateState &s, const RateTuning &tuning, double now) noexcept
{
	if (s.anchor_at < s.stream_start) {
		s.anchor_at = now;
		s.anchor_accepted = s.accepted_total;
		return -1;
	}
	const double span = now - s.anchor_at;
	const int64_t accepted = s.accepted_total - s.anchor_accepted;
	// Off by up to one request: wait for enough of them (or long enough, for a slow bucket).
	if (span < tuning.min_estimate_s || (accepted < kMinCounted && span < tuning.window_s))
		return -1;
	double measured = static_cast<double>(accepted) / span;
	// The bucket may have slowed down: the 200s since the last 429 acted on tell it sooner.
	if (s.judged_at > s.anchor_at && now - s.judged_at >= tuning.min_estimate_s &&
	    s.accepted_total - s.judged_accepted >= kMinCounted) {
		double recent = static_cast<double>(s.accepted_total - s.judged_accepted) / (now - s.judged_at);
		if (recent < 0.8 * measured) {
			s.anchor_at = s.judged_at;
			s.anchor_accepted = s.judged_accepted;
			measured = recent;
		}
	}
	// Count from a recent 429 (the bucket may have changed since an old one).
	if (span > 2 * tuning.window_s) {
		s.anchor_at = now;
		s.anchor_accepted = s.accepted_total;
	}
	return measured;
}

}  // namespace

void
on_response(RateState &s, const RateTuning &tuning, double now, bool rate_limited) noexcept
{
	if (s.first_answer < s.stream_start)
		s.first_answer = now;
	if (s.stream_responses < INT32_MAX)
		s.stream_responses++;
	if (!rate_limited) {
		count(s.accepted, now);
		s.accepted_total++;
		double dt = std::min(now - s.last_increase, kMaxGrowthStep);
		if (!(dt > 0))
			return;
		s.last_increase = now;
		const double quiet = now - std::max(s.last_decrease, s.stream_start);
		if (now - s.last_decrease < tuning.hold_s || !rate_bound(s, tuning, now))
			return;
		if (s.slow_start) {
			s.rate = capped(s, s.rate * std::exp2(dt / tuning.doubling_s));
		} else if (!(s.estimate > 0)) {
			// A 429 came but nothing was measured yet: probe quickly, so that the next 429s measure.
			s.rate = capped(s, s.rate * (1 + kUnmeasuredProbe * dt));
		} else if (s.rate < s.estimate) {
			s.rate = capped(s, std::min(s.estimate, s.rate + tuning.recover_per_s * s.estimate * dt));
		} else {
			// Probing above the estimate: slowly, faster the longer no 429 came (the limit may have grown).
			double base = std::max(s.estimate, s.rate);
			s.rate = capped(s, s.rate + tuning.probe_per_s * base * dt * std::clamp(quiet / tuning.window_s, 1.0, 3.0));
		}
		return;
	}
	s.limited++;
	const double measured = measure_at_429(s, tuning, now);
	if (measured > 0) {
		s.estimate = measured;
		if (s.rate > measured) {
			// A measurement, not a reaction: back to it at once, even within hold_s of a decrease.
			s.rate = capped(s, std::max(tuning.min_rate, measured * tuning.backoff));
			s.slow_start = false;
			s.tat = std::max(s.tat, now + s.burst / s.rate);
		}
	}
	if (now - s.last_decrease < tuning.hold_s)
		return;  // one burst of 429s is one signal
	const double latency = std::max(0.0, s.first_answer - s.stream_start);
	if (measured < 0 && s.estimate <= 0 && s.opening_sends >= 2 && s.stream_responses <= s.opening_sends) {
		// Nothing known, and the 429 answers a request of the stream's opening burst (one of its first
		// answers): a burst limit, not a rate limit. From now on requests are spaced evenly, at the
		// same rate.
		s.burst = 1;
		s.learned = true;
		s.tat = std::max(s.tat, now + 1.0 / s.rate);
		return;
	}
	double rate;
	if (s.estimate > 0) {
		rate = std::min(s.rate, s.estimate) * tuning.backoff;  // back to the measured rate, not far below
	} else if (s.slow_start) {
		// The request was sent a latency ago, when the rate was this much lower: too high then. Half of
		// that (one doubling before) was not too high yet, nor are the 200s that came lately: the
		// larger of these two floors, until the next 429s measure the rate.
		const double sent_at = s.rate / std::exp2(std::min(latency, 4 * tuning.doubling_s) / tuning.doubling_s);
		rate = sent_at / 2;
		const double answered_for = now - s.first_answer;
		if (answered_for >= RateState::kBucketSeconds)
			rate = std::max(rate, rate_over(s.accepted, std::min(answered_for, tuning.min_estimate_s), now));
		rate = std::min(rate, sent_at) * tuning.backoff;
	} else {
		rate = s.rate * kUnmeasuredBackoff;  // nothing measured yet: a small step, the next 429s measure
	}
	s.rate = capped(s, std::max(tuning.min_rate, rate));
	s.slow_start = false;
	s.learned = true;
	s.last_decrease = now;
	s.last_increase = now;
	s.judged_at = now;
	s.judged_accepted = s.accepted_total;
	// The server's bucket is full now: the next request waits a whole interval.
	s.tat = std::max(s.tat, now + s.burst / s.rate);
}

double
rate_to_remember(const RateState &s) noexcept
{
	if (!s.learned || s.slow_start)
		return 0;
	// Without a measurement, the rate the first 429s cut to (a rough figure, better than none).
	return s.estimate > 0 ? s.estimate : s.rate;
}

}  // namespace ia::rate_rules
