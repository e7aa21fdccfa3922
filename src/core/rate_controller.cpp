#include "core/rate_controller.hpp"

#include <algorithm>
#include <cmath>

namespace ia {

void
RateController::forget_before(double t)
{
	while (!accepted_.empty() && accepted_.front() < t)
		accepted_.pop_front();
}

void
RateController::on_sent(double now)
{
	if (std::isfinite(rate_))
		next_allowed_ = std::max(next_allowed_, now) + 1.0 / rate_;
}

void
RateController::on_response(double now, bool rate_limited)
{
	forget_before(now - tuning_.window_s);
	if (!rate_limited) {
		accepted_.push_back(now);
		if (std::isfinite(rate_)) {
			rate_ += tuning_.increase_per_s * std::max(0.0, now - last_increase_);
			last_increase_ = now;
		}
		return;
	}
	if (now - last_decrease_ < tuning_.hold_s)
		return;
	// What the bucket let through lately is the best estimate of its drain rate.
	double accepted_rate = static_cast<double>(accepted_.size()) / tuning_.window_s;
	double basis = accepted_rate > 0 ? accepted_rate : (std::isfinite(rate_) ? rate_ : 1.0);
	if (std::isfinite(rate_))
		basis = std::min(basis, rate_);
	rate_ = std::max(tuning_.min_rate, basis * tuning_.decrease);
	last_decrease_ = now;
	last_increase_ = now;
	next_allowed_ = now + 1.0 / rate_;
}

}  // namespace ia
