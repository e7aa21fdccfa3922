// Calls to Iterable on behalf of an account, from a backend or a sync worker: request building
// (Api-Key, User-Agent, JSON), options from the GUCs, interruptible waiting, and error text that
// names the account and the host but never the key.
//
// The rule for the key in outside text (docs/architecture.md, Security): every request is built
// by iterable_request(), which gives the HTTP client the key as the request's secret, so the text
// of every answer that is not 2xx and of every transport error arrives with the key redacted
// (redact_secret(), src/core/redaction.hpp), whether through call_iterable() or HttpClient::poll();
// a 2xx body is kept as sent for parsing, and is parsed with parse_answer(), whose error text
// (which quotes the body) is redacted too.
#pragma once

#include "definitions/account_store.hpp"
#include "core/http_client.hpp"
#include "core/iterable_json.hpp"
#include "core/redaction.hpp"

namespace ia {

// HTTP options from the iterable_audience.* GUCs of this process.
HttpOptions http_options_from_settings();

// The request's secret is the account's key (see above).
HttpRequest iterable_request(const Account &account, const char *method, const std::string &path,
                             std::string body = {});

// One exchange (retries included), waiting in slices so cancel and SIGTERM take effect within a
// second; throws pg::Interrupted when interrupted.
HttpResult call_iterable(HttpRequest request, const HttpOptions &options);

// True when the final outcome is an HTTP 2xx response.
bool call_succeeded(const HttpResult &result);

// One line saying why a call failed: "HTTP 401 BadApiKey: Invalid API key", or the transport error
// ("timed out after 5000 ms connecting to 127.0.0.1:9"), with the attempt count when retried.
std::string describe_call_failure(const HttpResult &result);

// Runs parse(body) on the body of a 2xx answer. A ResponseFormatError quotes the body, truncated:
// it is thrown again as the error of parsing the body with the account's key redacted (redacted
// before the truncation, so that no prefix of the key is left either).
template <typename Parse>
auto
parse_answer(const Account &account, const std::string &body, Parse &&parse) -> decltype(parse(body))
{
	try {
		return parse(body);
	} catch (const ResponseFormatError &) {
		const std::string redacted = redact_secret(body, account.api_key);
		try {
			parse(redacted);
		} catch (const ResponseFormatError &e) {
			throw ResponseFormatError(redact_secret(e.what(), account.api_key));
		}
		// Only the key made it unreadable (a key as short as a number in it): say so, quote nothing.
		throw ResponseFormatError("unexpected response from Iterable (it quotes the API key and is not shown)");
	}
}

// Throws the UserError matching a failed call: a clear message naming the account and what to do.
[[noreturn]] void throw_call_failure(const Account &account, const char *what, const HttpResult &result);

}  // namespace ia
