#include "core/cpp_only.hpp"
#include "core/rate_controller.hpp"

#include <algorithm>
#include <cmath>

namespace ia::rate_rules {

namespace {

constexpr double kBucketSeconds = RateState::kBucketSeconds;
constexpr int kBuckets = RateState::kBuckets;

int64_t
bucket_of(double t) noexcept
{
	return static_cast<int64_t>(std::floor(t / kBucketSeconds));
}

RateState::Bucket &
slot_of(RateState &s, int64_t index) noexcept
{
	int64_t slot = index % kBuckets;
	if (slot < 0)
		slot += kBuckets;
	return s.accepted[slot];
}

void
count_accepted(RateState &s, double now) noexcept
{
	int64_t index = bucket_of(now);
	RateState::Bucket &b = slot_of(s, index);
	// A slot holds the newest bucket that maps to it; an older one is over (outside the window).
	// (index < b.index only if times went backwards: counted in the newer bucket, close enough.)
	if (b.index < index) {
		b.index = index;
		b.count = 0;
	}
	if (b.count < UINT32_MAX)
		b.count++;
}

double
window_of(const RateTuning &tuning) noexcept
{
	double w = tuning.window_s;
	if (!(w >= kBucketSeconds))  // also NaN
		w = kBucketSeconds;
	return std::min(w, RateState::kMaxWindowSeconds);
}

}  // namespace

bool
may_send(const RateState &s, double now) noexcept
{
	return now >= s.next_allowed;
}

double
wait_seconds(const RateState &s, double now) noexcept
{
	return now >= s.next_allowed ? 0.0 : s.next_allowed - now;
}

void
on_sent(RateState &s, double now) noexcept
{
	if (std::isfinite(s.rate))
		s.next_allowed = std::max(s.next_allowed, now) + 1.0 / s.rate;
}

bool
try_send(RateState &s, double now) noexcept
{
	if (!may_send(s, now))
		return false;
	on_sent(s, now);
	return true;
}

double
accepted_rate(const RateState &s, const RateTuning &tuning, double now) noexcept
{
	const double window = window_of(tuning);
	const int64_t last = bucket_of(now);
	const double start = now - window;
	// The bucket the window starts in counts in proportion to the part of it inside the window.
	const int64_t first = std::max(bucket_of(start), last - (kBuckets - 1));
	const double first_share = std::clamp((static_cast<double>(first + 1) * kBucketSeconds - start) / kBucketSeconds, 0.0, 1.0);
	double accepted = 0;
	for (const RateState::Bucket &b : s.accepted) {
		if (b.count == 0 || b.index < first || b.index > last)
			continue;
		accepted += b.index == first ? first_share * b.count : static_cast<double>(b.count);
	}
	return accepted / window;
}

void
on_response(RateState &s, const RateTuning &tuning, double now, bool rate_limited) noexcept
{
	if (!rate_limited) {
		count_accepted(s, now);
		if (std::isfinite(s.rate) && now > s.last_increase) {
			s.rate += tuning.increase_per_s * (now - s.last_increase);
			s.last_increase = now;
		}
		return;
	}
	if (now - s.last_decrease < tuning.hold_s)
		return;
	// What the bucket let through lately is the best estimate of its drain rate.
	double accepted = accepted_rate(s, tuning, now);
	double basis = accepted > 0 ? accepted : (std::isfinite(s.rate) ? s.rate : 1.0);
	if (std::isfinite(s.rate))
		basis = std::min(basis, s.rate);
	s.rate = std::max(tuning.min_rate, basis * tuning.decrease);
	s.last_decrease = now;
	s.last_increase = now;
	s.next_allowed = now + 1.0 / s.rate;
}

}  // namespace ia::rate_rules
