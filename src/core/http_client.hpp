// HTTP client of the extension: one long-lived libcurl multi handle per process (connection
// reuse), several requests in flight, retries scheduled internally (retry_policy.hpp).
//
// Threading: an HttpClient is NOT thread-safe; use each instance from one thread at a time
// (a PostgreSQL backend or background worker is single-threaded anyway). Nothing here touches
// PostgreSQL; interrupts reach perform() through its should_abort callback.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/retry_policy.hpp"

namespace ia {

struct HttpRequest {
  std::string method;                // "GET", "POST", "DELETE" (any upper-case token; empty = GET)
  std::string url;                   // http:// or https:// only
  std::vector<std::string> headers;  // "Name: value"; never logged or echoed (the API key is here)
  std::string body;                  // sent when non-empty (and always for POST)
  uint64_t tag = 0;                  // caller's id, returned in the result
  std::string secret;                // the API key sent in a header: never in the result's text.
                                     // redact_secret() takes it out of the error, the content type
                                     // and the body of every answer that is not 2xx; a 2xx body is
                                     // left as it is for parsing (text quoting it must be redacted
                                     // by the caller: parse_answer() in src/iterable/iterable_call.hpp)
};

struct HttpOptions {
  long connect_timeout_ms = 5000;
  long total_timeout_ms = 30000;     // per attempt
  size_t max_response_bytes = 16u << 20;
  std::string ca_file;               // empty: system CA bundle
  std::string user_agent = "iterable_audience";
  RetryPolicy retry;
};

struct HttpResult {
  uint64_t tag = 0;
  TransportOutcome outcome = TransportOutcome::OtherError;  // of the final attempt
  long status = 0;                   // HTTP status of the final attempt, 0 if none
  std::string body;                  // response body of the final attempt (request.secret redacted
                                     // unless the status is 2xx)
  std::string content_type;          // request.secret redacted
  std::string error;                 // human text for non-Response outcomes (names host:port and the
                                     // timeout; never the headers, the path or the query string;
                                     // request.secret redacted)
  int attempts = 0;
  int rate_limited = 0;              // how many attempts were answered 429
  double elapsed_seconds = 0;        // from submit to final result
};

// Reported to the attempt observer after every attempt (outside curl callbacks).
struct AttemptInfo {
  uint64_t tag = 0;
  int attempt = 0;                   // 1-based
  AttemptOutcome outcome;            // status, transport outcome, Retry-After, latency
  RetryDecision decision{false, 0};  // what the client does next for this request
  std::string host;                  // "host:port" of the URL
};

struct HttpAborted : std::runtime_error {
  using runtime_error::runtime_error;
};

class HttpClient {
 public:
  // The process-local instance (never in shared memory). Lazily created on first use, after
  // curl_global_init; never destroyed (the OS closes its sockets at exit). If called in a child
  // forked after the parent created it, the child gets a fresh instance and leaves the
  // inherited one alone (its connections belong to the parent).
  static HttpClient& process_instance();

  HttpClient();   // independent instance with its own multi handle (tests; process_instance())
  ~HttpClient();  // cleans up every easy handle and the multi handle
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Non-blocking: starts the first attempt (or queues a final OtherError result when the request
  // cannot even be set up, e.g. an unparseable URL). Retries are scheduled internally.
  // Throws std::invalid_argument for a method that is not an upper-case token.
  void submit(HttpRequest req, const HttpOptions& opts);

  // Drives transfers and due retries for at most max_wait_ms (curl_multi_poll, returns early when
  // a request reaches its final outcome). Returns the requests that reached a final outcome.
  // Callers wanting interrupt checks should pass <= 100 ms.
  std::vector<HttpResult> poll(int max_wait_ms);

  // Submitted and not yet returned by poll()/perform() (in flight, waiting to retry, or done).
  size_t pending() const;

  // Drops every pending request (their results are never returned); connections in the middle
  // of a transfer are closed; the multi handle stays usable.
  void abort_all();

  // One blocking exchange: loops poll slices of <= 100 ms and calls should_abort() between them;
  // when it returns true, abort_all() and throw HttpAborted. Results of other requests that were
  // submitted earlier and finish meanwhile are kept for the next poll().
  HttpResult perform(HttpRequest req, const HttpOptions& opts,
                     const std::function<bool()>& should_abort);

  // Called after every attempt, outside curl callbacks, from poll()/perform(). May be empty.
  void set_attempt_observer(std::function<void(const AttemptInfo&)> observer);

  // Seed of the backoff jitter (default: std::random_device). For tests.
  void seed_jitter(uint64_t seed);

 private:
  struct Transfer;
  struct Done {
    uint64_t seq;
    HttpResult result;
  };
  using Clock = std::chrono::steady_clock;

  uint64_t submit_internal(HttpRequest req, const HttpOptions& opts);
  bool start_attempt(Transfer& t);
  void finish_attempt(void* easy, int curl_code);
  void finalize(std::unique_ptr<Transfer> t, const AttemptOutcome& last);
  void start_due_retries(Clock::time_point now);
  void drive(int max_wait_ms, uint64_t want_seq);
  bool has_done(uint64_t seq) const;

  void* multi_ = nullptr;  // CURLM*
  uint64_t next_seq_ = 1;
  std::vector<std::unique_ptr<Transfer>> active_;   // attached to the multi handle
  std::vector<std::unique_ptr<Transfer>> waiting_;  // waiting for their retry time
  std::vector<Done> done_;                          // final, not yet returned
  std::vector<AttemptInfo> observed_;               // to report to the observer
  std::function<void(const AttemptInfo&)> observer_;
  std::mt19937_64 rng_;
};

}  // namespace ia

#include "core/cpp_only.hpp"
