#include "core/iterable_json.hpp"
#include "iterable/iterable_call.hpp"
#include "settings.hpp"

#include "pg/guard.hpp"

namespace ia {

using pg::UserError;

HttpOptions
http_options_from_settings()
{
	HttpOptions o;
	o.connect_timeout_ms = settings::connect_timeout_ms;
	o.total_timeout_ms = settings::request_timeout_ms;
	o.max_response_bytes = static_cast<size_t>(settings::max_response_bytes);
	o.ca_file = settings::ca_file ? settings::ca_file : "";
	o.user_agent = std::string("iterable_audience/") + IA_VERSION;
	o.retry.max_attempts = settings::max_attempts;
	o.retry.base_delay_ms = settings::retry_base_delay_ms;
	o.retry.max_delay_ms = settings::retry_max_delay_ms;
	return o;
}

HttpRequest
iterable_request(const Account &account, const char *method, const std::string &path, std::string body)
{
	HttpRequest r;
	r.method = method;
	r.url = account.base_url + path;
	r.headers.push_back("Api-Key: " + account.api_key);
	r.headers.push_back("Accept: application/json");
	if (!body.empty())
		r.headers.push_back("Content-Type: application/json");
	r.body = std::move(body);
	r.secret = account.api_key;
	return r;
}

HttpResult
call_iterable(HttpRequest request, const HttpOptions &options)
{
	try {
		return HttpClient::process_instance().perform(std::move(request), options,
		                                              [] { return pg::interrupt_pending(); });
	} catch (const HttpAborted &) {
		throw pg::Interrupted();
	}
}

bool
call_succeeded(const HttpResult &result)
{
	return result.outcome == TransportOutcome::Response && result.status >= 200 && result.status < 300;
}

std::string
describe_call_failure(const HttpResult &result)
{
	std::string text = result.outcome == TransportOutcome::Response
	                       ? describe_http_failure(result.status, result.body)
	                       : result.error;
	if (result.outcome == TransportOutcome::Response && result.attempts > 1)
		text += " (after " + std::to_string(result.attempts) + " attempts)";  // transport errors say it already
	return text;
}

void
throw_call_failure(const Account &account, const char *what, const HttpResult &result)
{
	std::string message = std::string("could not ") + what + " for account \"" + account.name +
	                      "\": " + describe_call_failure(result);
	if (result.outcome != TransportOutcome::Response)
		throw UserError(ERRCODE_CONNECTION_FAILURE, message,
		                "Check the account's base_url or data_center and the network; the limits are "
		                "iterable_audience.connect_timeout_ms and iterable_audience.request_timeout_ms.");
	if (result.status == 401)
		throw UserError(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, message,
		                "Iterable refused the API key. Use a server-side key of this project and set it with "
		                "iterable_audience.alter_account('" + account.name + "', api_key => ...).");
	if (result.status == 429)
		throw UserError(ERRCODE_CONNECTION_FAILURE, message,
		                "Iterable's rate limit for this project was still exceeded after every retry; try again "
		                "later or raise iterable_audience.max_attempts.");
	if (result.status >= 500)
		throw UserError(ERRCODE_CONNECTION_FAILURE, message,
		                "Iterable failed on its side after every retry; try again later.");
	throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, message);
}

}  // namespace ia
