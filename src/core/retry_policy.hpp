// Retry policy of the HTTP client: which finished attempts are retried and after how long.
// Pure (no I/O, no clock unless AttemptOutcome::received_at is 0), unit-tested in test/unit.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <random>
#include <string>

namespace ia {

// How one attempt (and, in HttpResult, the final attempt) ended at the transport level.
enum class TransportOutcome {
  Response,           // an HTTP response was received completely (any status)
  Timeout,            // connect or total timeout of the attempt
  ConnectFailed,      // refused / unreachable / name not resolved
  ConnectionDropped,  // closed or reset before a complete response (nothing, partial headers or body)
  TooLarge,           // response body over HttpOptions::max_response_bytes
  TlsError,           // TLS handshake or certificate verification failure
  Aborted,            // transfer aborted (by the caller)
  OtherError          // anything else (bad URL, unsupported protocol, out of memory...)
};

// Stable lower-case name ("response", "timeout", ...) for logs.
const char* transport_outcome_name(TransportOutcome outcome);

struct RetryPolicy {
  int max_attempts = 5;        // total attempts including the first
  long base_delay_ms = 500;    // exponential backoff base
  long max_delay_ms = 30000;   // cap per wait
};

// What decide_retry() needs to know about the attempt that just finished.
struct AttemptOutcome {
  TransportOutcome transport = TransportOutcome::OtherError;
  long status = 0;                  // HTTP status, 0 if no response
  bool has_retry_after = false;     // a Retry-After header was present
  std::string retry_after;          // its raw value (delta-seconds or HTTP-date)
  std::time_t received_at = 0;      // wall clock (s since epoch) of the response, to evaluate an
                                    // HTTP-date; 0 = use the current time
  double latency_seconds = 0;       // duration of the attempt
};

struct RetryDecision {
  bool retry;
  long delay_ms;
};

// True for outcomes worth another attempt: HTTP 429 and 5xx, timeouts, connect failures and
// dropped connections. False for every other status (2xx, 3xx, 400, 401, 403, 404, 409, ...),
// TooLarge, TlsError, Aborted and OtherError.
bool is_retryable(const AttemptOutcome& outcome);

// Decide whether the attempt `attempt` (1-based, the one that just finished) is retried, and after
// how long: full-jitter exponential backoff, uniform in [0, min(max_delay_ms, base*2^(attempt-1))],
// unless a parseable Retry-After is present, which wins (capped at max_delay_ms).
// No retry once attempt >= max_attempts (a max_attempts below 1 counts as 1).
RetryDecision decide_retry(const RetryPolicy& policy, int attempt, const AttemptOutcome& outcome,
                           std::mt19937_64& rng);

// Parse a Retry-After value into a delay in milliseconds relative to `now` (s since epoch).
// Accepts delta-seconds ("120") and the three HTTP-date forms (IMF-fixdate
// "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime
// "Sun Nov  6 08:49:37 1994"). A date in the past gives 0. Garbage gives nullopt.
// Huge values saturate (no overflow).
std::optional<long> parse_retry_after_ms(const std::string& value, std::time_t now);

// Parse an HTTP-date (the three forms above) into seconds since the epoch (UTC).
std::optional<std::int64_t> parse_http_date(const std::string& value);

}  // namespace ia

#include "core/cpp_only.hpp"
