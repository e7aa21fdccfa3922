// Calls to Iterable on behalf of an account, from a backend or a sync worker: request building
// (Api-Key, User-Agent, JSON), options from the GUCs, interruptible waiting, and error text that
// names the account and the host but never the key.
#pragma once

#include "definitions/account_store.hpp"
#include "core/http_client.hpp"

namespace ia {

// HTTP options from the iterable_audience.* GUCs of this process.
HttpOptions http_options_from_settings();

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

// Throws the UserError matching a failed call: a clear message naming the account and what to do.
[[noreturn]] void throw_call_failure(const Account &account, const char *what, const HttpResult &result);

}  // namespace ia
