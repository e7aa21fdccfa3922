#include "engine/run_request.hpp"
#include "settings.hpp"

namespace ia {

void
capture_settings(RunRequest &r)
{
	r.batch_size = settings::batch_size;
	r.max_requests_in_flight = settings::max_requests_in_flight;
	r.connect_timeout_ms = settings::connect_timeout_ms;
	r.request_timeout_ms = settings::request_timeout_ms;
	r.max_attempts = settings::max_attempts;
	r.retry_base_delay_ms = settings::retry_base_delay_ms;
	r.retry_max_delay_ms = settings::retry_max_delay_ms;
	r.max_response_bytes = settings::max_response_bytes;
}

void
apply_settings(const RunRequest &r)
{
	settings::batch_size = r.batch_size;
	settings::max_requests_in_flight = r.max_requests_in_flight;
	settings::connect_timeout_ms = r.connect_timeout_ms;
	settings::request_timeout_ms = r.request_timeout_ms;
	settings::max_attempts = r.max_attempts;
	settings::retry_base_delay_ms = r.retry_base_delay_ms;
	settings::retry_max_delay_ms = r.retry_max_delay_ms;
	settings::max_response_bytes = r.max_response_bytes;
}

}  // namespace ia
