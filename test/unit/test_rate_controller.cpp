// The rate controller against a simulated Iterable leaky bucket (20 requests/s, burst 20, 100 ms
// latency, up to 4 requests in flight): it must use nearly all of the limit with few 429s, alone and
// when two runs of the same project drive one shared state (as src/shared_pacing.cpp does).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
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

// The simulated Iterable bucket: the level drains at limit_rate, a request fits when level + 1 <= burst.
struct LeakyBucket {
	double limit_rate;
	double burst;
	double level = 0;
	double last = 0;

	bool admit(double now)
	{
		level = std::max(0.0, level - (now - last) * limit_rate);
		last = now;
		if (level + 1 > burst)
			return false;
		level += 1;
		return true;
	}
};

// One sync run: its own requests in flight, a window [start, end) in which it has records to send.
struct SimRun {
	double start = 0;
	double end = 1e18;
	int max_in_flight = 4;
	std::vector<double> in_flight;  // answer times
	std::vector<bool> answers;
	Outcome out;
};

// Several runs of one project against one bucket. shared: the runs drive one RateState with the
// atomic check-and-reserve a shared slot uses (rate_rules::try_send under its lock); otherwise each
// run has a state of its own (what runs did before the controller was shared).
std::vector<Outcome>
simulate_runs(std::vector<SimRun> runs, bool shared, double limit_rate, double burst, double latency_s, double seconds)
{
	const ia::RateTuning tuning;
	ia::RateState shared_state;
	std::vector<ia::RateState> own(runs.size());
	LeakyBucket bucket{limit_rate, burst};
	size_t step = 0;
	for (double now = 0; now < seconds; now += 0.001, step++) {
		for (size_t k = 0; k < runs.size(); k++) {
			// Take turns at who goes first within one millisecond.
			size_t r = (k + step) % runs.size();
			SimRun &run = runs[r];
			ia::RateState &state = shared ? shared_state : own[r];
			for (size_t i = 0; i < run.in_flight.size();) {
				if (run.in_flight[i] <= now) {
					ia::rate_rules::on_response(state, tuning, now, !run.answers[i]);
					(run.answers[i] ? run.out.accepted : run.out.limited)++;
					run.in_flight.erase(run.in_flight.begin() + static_cast<std::ptrdiff_t>(i));
					run.answers.erase(run.answers.begin() + static_cast<std::ptrdiff_t>(i));
				} else {
					i++;
				}
			}
			if (now < run.start || now >= run.end)
				continue;
			while (static_cast<int>(run.in_flight.size()) < run.max_in_flight && ia::rate_rules::try_send(state, now)) {
				run.in_flight.push_back(now + latency_s);
				run.answers.push_back(bucket.admit(now));
			}
		}
	}
	std::vector<Outcome> outcomes;
	for (const SimRun &run : runs)
		outcomes.push_back(run.out);
	return outcomes;
}

Outcome
total(const std::vector<Outcome> &outcomes)
{
	Outcome sum;
	for (const Outcome &o : outcomes) {
		sum.accepted += o.accepted;
		sum.limited += o.limited;
	}
	return sum;
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

TEST(RateController, StateIsPlainData)
{
	static_assert(std::is_trivially_copyable_v<ia::RateState>);
	static_assert(std::is_standard_layout_v<ia::RateState>);
	// A copy made with memcpy (as shared memory holds it) goes on exactly like the original.
	ia::RateController c;
	for (int i = 0; i < 40; i++)
		c.on_response(i * 0.05, false);
	c.on_response(2.0, true);
	ia::RateState copy;
	std::memcpy(static_cast<void *>(&copy), &c.state(), sizeof copy);
	EXPECT_EQ(copy.rate, c.rate());
	ia::RateState original = c.state();
	ia::rate_rules::on_response(copy, c.tuning(), 3.0, false);
	ia::rate_rules::on_response(original, c.tuning(), 3.0, false);
	EXPECT_EQ(copy.rate, original.rate);
	EXPECT_EQ(copy.next_allowed, original.next_allowed);
}

TEST(RateController, AcceptedRateCountsTheLastTwoSecondsOnly)
{
	ia::RateState s;
	ia::RateTuning t;
	for (int i = 0; i < 40; i++)
		ia::rate_rules::on_response(s, t, 10.0 + i * 0.05, false);  // 20/s from 10.0 to 11.95
	EXPECT_NEAR(ia::rate_rules::accepted_rate(s, t, 11.999), 20.0, 0.6);
	EXPECT_NEAR(ia::rate_rules::accepted_rate(s, t, 13.0), 10.0, 0.6);  // half the answers left the window
	EXPECT_EQ(ia::rate_rules::accepted_rate(s, t, 14.0), 0.0);
	EXPECT_EQ(ia::rate_rules::accepted_rate(s, t, 1000.0), 0.0);  // the ring's old buckets do not come back
	// A 429 long after: the basis is the rate, not stale buckets.
	ia::rate_rules::on_response(s, t, 1000.0, true);
	EXPECT_NEAR(s.rate, 1.0 * 0.85, 1e-9);
}

TEST(RateController, TrySendReservesTheSlot)
{
	ia::RateState s;
	ia::RateTuning t;
	EXPECT_TRUE(ia::rate_rules::try_send(s, 0));  // unpaced: always
	EXPECT_TRUE(ia::rate_rules::try_send(s, 0));
	for (int i = 0; i < 40; i++)
		ia::rate_rules::on_response(s, t, i * 0.05, false);
	ia::rate_rules::on_response(s, t, 2.0, true);  // rate ~17/s, next send ~2.06
	double at = s.next_allowed;
	EXPECT_FALSE(ia::rate_rules::try_send(s, at - 0.001));
	EXPECT_EQ(s.next_allowed, at);  // a refused try changes nothing
	EXPECT_TRUE(ia::rate_rules::try_send(s, at));
	EXPECT_FALSE(ia::rate_rules::try_send(s, at));  // the second sender at the same instant waits
	EXPECT_NEAR(ia::rate_rules::wait_seconds(s, at), 1.0 / s.rate, 1e-9);
}

TEST(RateController, TwoRunsSharingOneStateUseNearlyAllOfOneBucketWithFew429s)
{
	std::vector<Outcome> runs = simulate_runs({SimRun{}, SimRun{}}, true, 20, 20, 0.1, 120);
	Outcome o = total(runs);
	double used = o.accepted / 120.0 / 20.0;
	double limited_share = static_cast<double>(o.limited) / (o.accepted + o.limited);
	EXPECT_GE(used, 0.95) << o.accepted << " accepted, " << o.limited << " limited";
	EXPECT_LT(limited_share, 0.02) << o.accepted << " accepted, " << o.limited << " limited";
	// Both runs get a fair part of the limit.
	for (const Outcome &run : runs)
		EXPECT_GT(run.accepted, o.accepted / 3) << run.accepted << " of " << o.accepted;
}

TEST(RateController, ARunJoiningAndLeavingASharedStateKeepsFew429s)
{
	SimRun first;
	SimRun second;
	second.start = 40;
	second.end = 80;
	std::vector<Outcome> runs = simulate_runs({first, second}, true, 20, 20, 0.1, 120);
	Outcome o = total(runs);
	double used = o.accepted / 120.0 / 20.0;
	double limited_share = static_cast<double>(o.limited) / (o.accepted + o.limited);
	EXPECT_GE(used, 0.95) << o.accepted << " accepted, " << o.limited << " limited";
	EXPECT_LT(limited_share, 0.02) << o.accepted << " accepted, " << o.limited << " limited";
	EXPECT_GT(runs[1].accepted, 40 * 20 / 3);
}

TEST(RateController, OneRunAloneInTheMultiRunSimulationMatchesTheController)
{
	Outcome alone = total(simulate_runs({SimRun{}}, true, 20, 20, 0.1, 120));
	double used = alone.accepted / 120.0 / 20.0;
	double limited_share = static_cast<double>(alone.limited) / (alone.accepted + alone.limited);
	EXPECT_GE(used, 0.95);
	EXPECT_LT(limited_share, 0.02);
}
