// The rate controller against a simulated Iterable leaky bucket (20 requests/s, burst 20, 100 ms
// latency, up to 4 requests in flight): it must use nearly all of the limit with few 429s.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rate_controller.hpp"

namespace {

struct Outcome {
	int accepted = 0;
	int limited = 0;
};

// Discrete-time simulation in 1 ms steps; each request is judged by the bucket when it arrives.
Outcome
simulate(double limit_rate, double burst, double latency_s, int max_in_flight, double seconds)
{
	ia::RateController controller;
	double level = 0, last = 0;
	std::vector<double> in_flight;  // answer times
	std::vector<bool> answers;
	Outcome out;
	for (double now = 0; now < seconds; now += 0.001) {
		// Answers that arrive now.
		for (size_t i = 0; i < in_flight.size();) {
			if (in_flight[i] <= now) {
				controller.on_response(now, !answers[i]);
				(answers[i] ? out.accepted : out.limited)++;
				in_flight.erase(in_flight.begin() + i);
				answers.erase(answers.begin() + i);
			} else {
				i++;
			}
		}
		while (static_cast<int>(in_flight.size()) < max_in_flight && controller.may_send(now)) {
			controller.on_sent(now);
			level = std::max(0.0, level - (now - last) * limit_rate);
			last = now;
			bool ok = level + 1 <= burst;
			if (ok)
				level += 1;
			in_flight.push_back(now + latency_s);
			answers.push_back(ok);
		}
	}
	return out;
}

}  // namespace

TEST(RateController, UnpacedUntilTheFirst429)
{
	ia::RateController c;
	EXPECT_TRUE(std::isinf(c.rate()));
	c.on_sent(0);
	EXPECT_TRUE(c.may_send(0));
}

TEST(RateController, DecreasesToAFractionOfWhatWasAccepted)
{
	ia::RateController c;
	for (int i = 0; i < 40; i++)
		c.on_response(i * 0.05, false);  // 20 accepted per second over the last 2 s
	c.on_response(2.0, true);
	EXPECT_NEAR(c.rate(), 20 * 0.85, 1.0);
	c.on_response(2.1, true);  // same burst of 429s: no second decrease
	EXPECT_NEAR(c.rate(), 20 * 0.85, 1.0);
	c.on_sent(2.2);
	EXPECT_FALSE(c.may_send(2.2));
	EXPECT_GT(c.wait_seconds(2.2), 0.0);
}

TEST(RateController, IncreasesSlowlyWhileAccepted)
{
	ia::RateController c;
	c.on_response(0, true);
	double r0 = c.rate();
	c.on_response(4, false);
	EXPECT_NEAR(c.rate(), r0 + 4 * 0.5, 1e-9);
}

TEST(RateController, UsesNearlyAllOfAHiddenLeakyBucketWithFew429s)
{
	Outcome o = simulate(20, 20, 0.1, 4, 120);
	double used = o.accepted / 120.0 / 20.0;
	double limited_share = static_cast<double>(o.limited) / (o.accepted + o.limited);
	EXPECT_GE(used, 0.95) << o.accepted << " accepted, " << o.limited << " limited";
	EXPECT_LT(limited_share, 0.02) << o.accepted << " accepted, " << o.limited << " limited";
}

TEST(RateController, WithoutALimitNothingIsPaced)
{
	Outcome o = simulate(1e9, 1e9, 0.1, 4, 10);
	EXPECT_EQ(o.limited, 0);
	EXPECT_NEAR(o.accepted, 10 / 0.1 * 4, 8);  // in flight / latency
}
