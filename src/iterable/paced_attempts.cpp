#include "iterable/paced_attempts.hpp"

namespace ia {

PacedAttempts::PacedAttempts(HttpClient &client, SharedPacing &pacing) : client_(client)
{
	client_.set_attempt_observer([this, &pacing](const AttemptInfo &attempt) {
		bool answered = attempt.outcome.transport == TransportOutcome::Response;
		if (answered)
			pacing.on_response(attempt.outcome.status == 429);
		if (!answered || attempt.outcome.status >= 500)
			uncertain_.insert(attempt.tag);
	});
	client_.set_retry_gate([&pacing] { return pacing.retry_gate(); });
}

PacedAttempts::~PacedAttempts()
{
	client_.set_attempt_observer(nullptr);
	client_.set_retry_gate(nullptr);
}

}  // namespace ia
