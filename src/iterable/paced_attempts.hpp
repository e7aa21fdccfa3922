// Ties the HTTP client's attempts to a shared pacing slot for one send phase (every kind's sends).
#pragma once

#include <cstdint>
#include <set>

#include "core/http_client.hpp"
#include "iterable/shared_pacing.hpp"

namespace ia {

// While it lives: every answered attempt, retries included, feeds the shared controller; a retry of a
// 429 waits for the controller's send slot; and the tags of requests that had an attempt Iterable may
// have applied without answering (no answer, or a 5xx) are kept. The destructor detaches both hooks,
// also when the phase ends by an exception.
class PacedAttempts {
 public:
	PacedAttempts(HttpClient &client, SharedPacing &pacing);
	~PacedAttempts();
	PacedAttempts(const PacedAttempts &) = delete;
	PacedAttempts &operator=(const PacedAttempts &) = delete;

	// Once per request: did an attempt of the request `tag` end unanswered or with a 5xx?
	bool take_uncertain(uint64_t tag) { return uncertain_.erase(tag) > 0; }

 private:
	HttpClient &client_;
	std::set<uint64_t> uncertain_;
};

}  // namespace ia
