#include "pacing_simulation.hpp"

#include <algorithm>
#include <cmath>

namespace sim {

namespace {

struct Batch {
	int attempts = 0;
	double answer_at = -1;  // in flight: when its answer arrives
	double arrive_at = -1;  // in flight: when it reaches the bucket (judged then)
	bool judged = true;
	bool admitted = false;  // the bucket's verdict on the attempt in flight
	double retry_at = -1;   // waiting for a retry
};

struct Sender {
	Run run;
	int left = 0;                // not yet sent
	std::vector<Batch> batches;  // sent, not finished
};

}  // namespace

int
Outcome::accepted() const
{
	int n = 0;
	for (const Run &r : runs)
		n += r.accepted;
	return n;
}

int
Outcome::limited() const
{
	int n = 0;
	for (const Run &r : runs)
		n += r.limited;
	return n;
}

int
Outcome::failed() const
{
	int n = 0;
	for (const Run &r : runs)
		n += r.failed;
	return n;
}

double
Outcome::seconds() const
{
	double first = 1e18, last = -1e18;
	for (const Run &r : runs) {
		first = std::min(first, r.first_send);
		last = std::max(last, r.last_answer);
	}
	return last - first;
}

Outcome
simulate(std::vector<Run> runs, Bucket bucket, const ia::RateState &initial, const Options &options,
         const ia::RateTuning &tuning)
{
	std::mt19937_64 rng(options.seed);
	std::vector<Sender> senders;
	for (const Run &r : runs) {
		Sender s;
		s.run = r;
		s.left = r.requests;
		senders.push_back(s);
	}
	std::vector<ia::RateState> states(options.shared ? 1 : senders.size(), initial);
	std::uniform_real_distribution<double> jitter(0, std::max(0.0, std::min(options.jitter_s, options.latency_s)));
	auto send = [&](Batch &batch, double now) {
		batch.arrive_at = now + jitter(rng);
		batch.judged = false;
		batch.answer_at = now + options.latency_s;
	};
	Outcome out;
	double next_sample = 0;
	int64_t step = 0;
	// A monotonic clock does not start at 0 (a state that assumed it would, would show it here).
	const double origin = options.origin;
	bucket.origin = origin;
	for (double t = 0; t < options.seconds; step++, t = static_cast<double>(step) * 0.001) {
		const double now = origin + t;
		if (options.sample_every_s > 0 && t >= next_sample) {
			out.rate_samples.emplace_back(t, states[0].rate);
			next_sample += options.sample_every_s;
		}
		// Requests reach the bucket in the order they arrive (network jitter may reorder them).
		std::vector<Batch *> arriving;
		for (Sender &s : senders)
			for (Batch &b : s.batches)
				if (!b.judged && b.arrive_at <= now)
					arriving.push_back(&b);
		std::sort(arriving.begin(), arriving.end(), [](const Batch *a, const Batch *b) { return a->arrive_at < b->arrive_at; });
		for (Batch *b : arriving) {
			b->admitted = bucket.admit(b->arrive_at);
			b->judged = true;
		}
		bool busy = false;
		for (size_t k = 0; k < senders.size(); k++) {
			// Take turns at who goes first within one millisecond.
			size_t i = (k + static_cast<size_t>(step)) % senders.size();
			Sender &s = senders[i];
			ia::RateState &state = states[options.shared ? 0 : i];
			for (size_t b = 0; b < s.batches.size();) {
				Batch &batch = s.batches[b];
				if (batch.answer_at >= 0 && batch.answer_at <= now) {
					ia::rate_rules::on_response(state, tuning, now, !batch.admitted);
					s.run.last_answer = now;
					batch.answer_at = -1;
					if (batch.admitted) {
						s.run.accepted++;
						s.batches.erase(s.batches.begin() + static_cast<std::ptrdiff_t>(b));
						continue;
					}
					s.run.limited++;
					if (batch.attempts >= options.max_attempts) {
						s.run.failed++;
						s.batches.erase(s.batches.begin() + static_cast<std::ptrdiff_t>(b));
						continue;
					}
					double cap = std::min(options.max_delay_s, options.base_delay_s * std::exp2(batch.attempts - 1));
					// Paced: the first retry waits for the pacing only, later ones back off first (one
					// attempt less: as HttpClient with a retry gate).
					if (options.paced_retries)
						cap = batch.attempts < 2 ? 0 : std::min(options.max_delay_s, options.base_delay_s * std::exp2(batch.attempts - 2));
					batch.retry_at = now + std::uniform_real_distribution<double>(0, cap)(rng);
				}
				if (batch.retry_at >= 0 && batch.retry_at <= now &&
				    (!options.paced_retries || ia::rate_rules::try_send(state, tuning, now))) {  // the client's retry
					batch.retry_at = -1;
					batch.attempts++;
					send(batch, now);
				}
				b++;
			}
			if (t >= s.run.start) {
				while (s.left > 0 && static_cast<int>(s.batches.size()) < s.run.max_in_flight &&
				       ia::rate_rules::try_send(state, tuning, now)) {
					Batch batch;
					batch.attempts = 1;
					send(batch, now);
					s.batches.push_back(batch);
					s.left--;
					if (s.run.first_send < 0)
						s.run.first_send = now;
				}
			}
			busy = busy || s.left > 0 || !s.batches.empty();
		}
		if (!busy)
			break;
	}
	for (const Sender &s : senders)
		out.runs.push_back(s.run);
	out.states = states;
	return out;
}

}  // namespace sim
