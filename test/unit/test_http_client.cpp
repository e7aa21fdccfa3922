// HttpClient against an in-process loopback server (http_test_server.hpp) and, for TLS, an
// `openssl s_server` child on 127.0.0.1 (skipped when the openssl binary is missing).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "core/http_client.hpp"
#include "core/redaction.hpp"
#include "http_test_server.hpp"

using iatest::Action;
using iatest::TestServer;

namespace {

// The tests talk to 127.0.0.1 only: never through a proxy from the environment.
[[maybe_unused]] const bool kNoProxy = [] {
  setenv("NO_PROXY", "*", 1);
  setenv("no_proxy", "*", 1);
  return true;
}();

constexpr const char* kApiKey = "secret-key-1234567890";

ia::HttpOptions fast_options() {
  ia::HttpOptions o;
  o.connect_timeout_ms = 1000;
  o.total_timeout_ms = 2000;
  o.user_agent = "iterable_audience/0.0.0-test";
  o.retry.max_attempts = 3;
  o.retry.base_delay_ms = 5;
  o.retry.max_delay_ms = 20;
  return o;
}

ia::HttpRequest get(const std::string& url, uint64_t tag = 0) {
  ia::HttpRequest r;
  r.method = "GET";
  r.url = url;
  r.headers = {std::string("Api-Key: ") + kApiKey};
  r.tag = tag;
  return r;
}

const std::function<bool()> kNever = [] { return false; };

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Polls until nothing is pending (bounded), collecting results.
std::vector<ia::HttpResult> drain(ia::HttpClient& c, double max_seconds = 10) {
  std::vector<ia::HttpResult> all;
  const auto t0 = std::chrono::steady_clock::now();
  while (c.pending() > 0 && since(t0) < max_seconds) {
    for (auto& r : c.poll(100)) all.push_back(std::move(r));
  }
  return all;
}

}  // namespace

TEST(HttpClient, GetSuccess) {
  TestServer srv;
  Action a = Action::respond(200, R"({"lists":[]})");
  a.content_type = "application/json";
  srv.enqueue(a);
  ia::HttpClient c;
  const auto r = c.perform(get(srv.url("/api/lists"), 42), fast_options(), kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Response);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"lists":[]})");
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.tag, 42u);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.rate_limited, 0);
  EXPECT_TRUE(r.error.empty());
  EXPECT_GE(r.elapsed_seconds, 0.0);
  EXPECT_EQ(c.pending(), 0u);
  ASSERT_EQ(srv.request_count(), 1u);
  EXPECT_EQ(srv.requests()[0].method, "GET");
  EXPECT_EQ(srv.requests()[0].target, "/api/lists");
}

TEST(HttpClient, SendsMethodHeadersAndBody) {
  TestServer srv;
  ia::HttpClient c;
  ia::HttpRequest req;
  req.method = "POST";
  req.url = srv.url("/api/lists/subscribe");
  req.headers = {"Content-Type: application/json", std::string("Api-Key: ") + kApiKey,
                 "X-Custom: custom value"};
  req.body = std::string(R"({"listId":1,"subscribers":[)") + std::string(5000, ' ') + "]}";
  auto opts = fast_options();
  opts.user_agent = "iterable_audience/1.2.3";
  const auto r = c.perform(req, opts, kNever);
  EXPECT_EQ(r.status, 200);

  ia::HttpRequest del;
  del.method = "DELETE";
  del.url = srv.url("/api/lists/7");
  EXPECT_EQ(c.perform(del, opts, kNever).status, 200);

  ASSERT_EQ(srv.request_count(), 2u);
  const auto reqs = srv.requests();
  const auto& p = reqs[0];
  EXPECT_EQ(p.method, "POST");
  EXPECT_EQ(p.target, "/api/lists/subscribe");
  EXPECT_EQ(p.header("User-Agent"), "iterable_audience/1.2.3");
  EXPECT_EQ(p.header("Content-Type"), "application/json");
  EXPECT_EQ(p.header("Api-Key"), kApiKey);
  EXPECT_EQ(p.header("X-Custom"), "custom value");
  EXPECT_EQ(p.body, req.body);
  bool expect_present = true;
  p.header("Expect", &expect_present);
  EXPECT_FALSE(expect_present) << "no 100-continue round trip";

  EXPECT_EQ(reqs[1].method, "DELETE");
  EXPECT_EQ(reqs[1].target, "/api/lists/7");
  EXPECT_TRUE(reqs[1].body.empty());
}

TEST(HttpClient, Retries429ThenSucceeds) {
  TestServer srv;
  srv.enqueue(Action::respond(429, "Rate limit exceeded. Please try again later."));
  srv.enqueue(Action::respond(200, "done"));
  ia::HttpClient c;
  const auto r = c.perform(get(srv.url()), fast_options(), kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Response);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "done");
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.rate_limited, 1);
  EXPECT_EQ(srv.request_count(), 2u);
}

TEST(HttpClient, Retries5xxUpToMaxAttempts) {
  for (int status : {500, 502, 503, 504}) {
    TestServer srv;
    srv.set_default(Action::respond(status, "busy"));
    ia::HttpClient c;
    auto opts = fast_options();
    opts.retry.max_attempts = 4;
    const auto r = c.perform(get(srv.url()), opts, kNever);
    EXPECT_EQ(r.outcome, ia::TransportOutcome::Response) << status;
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.body, "busy");
    EXPECT_EQ(r.attempts, 4) << status;
    EXPECT_EQ(r.rate_limited, 0);
    EXPECT_EQ(srv.request_count(), 4u) << status;
  }
}

TEST(HttpClient, DoesNotRetry4xx) {
  for (int status : {400, 401, 403, 404, 409}) {
    TestServer srv;
    srv.set_default(Action::respond(status, R"({"msg":"Invalid API key","code":"BadApiKey"})"));
    ia::HttpClient c;
    const auto r = c.perform(get(srv.url()), fast_options(), kNever);
    EXPECT_EQ(r.outcome, ia::TransportOutcome::Response);
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.attempts, 1) << status;
    EXPECT_EQ(srv.request_count(), 1u) << status;
    EXPECT_NE(r.body.find("BadApiKey"), std::string::npos);
  }
}

TEST(HttpClient, RedirectIsNotFollowed) {
  TestServer srv;
  srv.enqueue(Action::respond(302, "", {"Location: /elsewhere"}));
  ia::HttpClient c;
  const auto r = c.perform(get(srv.url()), fast_options(), kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Response);
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(srv.request_count(), 1u);
}

TEST(HttpClient, RetriesDroppedConnection) {
  TestServer srv;
  srv.enqueue(Action::of(Action::Kind::Drop));
  srv.enqueue(Action::respond(200, "after drop"));
  ia::HttpClient c;
  std::vector<ia::AttemptInfo> seen;
  c.set_attempt_observer([&](const ia::AttemptInfo& i) { seen.push_back(i); });
  const auto r = c.perform(get(srv.url()), fast_options(), kNever);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "after drop");
  EXPECT_EQ(r.attempts, 2);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].outcome.transport, ia::TransportOutcome::ConnectionDropped);
  EXPECT_TRUE(seen[0].decision.retry);
  EXPECT_EQ(seen[1].outcome.transport, ia::TransportOutcome::Response);
  EXPECT_FALSE(seen[1].decision.retry);
}

TEST(HttpClient, RetriesPartialBodyThenReportsDropped) {
  TestServer srv;
  Action partial = Action::of(Action::Kind::DropMidBody);
  partial.body = std::string(2000, 'p');
  srv.set_default(partial);
  ia::HttpClient c;
  const auto r = c.perform(get(srv.url()), fast_options(), kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::ConnectionDropped);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.body.empty());
  EXPECT_NE(r.error.find("dropped"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(srv.host_port()), std::string::npos) << r.error;
}

TEST(HttpClient, HangTimesOutIsRetriedThenFailsWithTimeout) {
  TestServer srv;
  srv.set_default(Action::of(Action::Kind::Hang));
  ia::HttpClient c;
  auto opts = fast_options();
  opts.total_timeout_ms = 300;
  opts.retry.max_attempts = 2;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = c.perform(get(srv.url("/api/lists?api_key=querysecret")), opts, kNever);
  EXPECT_LT(since(t0), 5.0);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Timeout);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(srv.request_count(), 2u);
  EXPECT_NE(r.error.find("timed out after 300 ms waiting for " + srv.host_port()),
            std::string::npos)
      << r.error;
  EXPECT_EQ(r.error.find(kApiKey), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("Api-Key"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("querysecret"), std::string::npos) << r.error;
}

TEST(HttpClient, ConnectRefusedIsConnectFailed) {
  const int port = iatest::closed_port();
  ia::HttpClient c;
  auto opts = fast_options();
  opts.retry.max_attempts = 2;
  const auto r =
      c.perform(get("http://127.0.0.1:" + std::to_string(port) + "/x"), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::ConnectFailed);
  EXPECT_EQ(r.attempts, 2);  // connect failures are retried
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("could not connect to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << r.error;
}

TEST(HttpClient, SizeCapByContentLengthIsTooLargeAndNotRetried) {
  TestServer srv;
  srv.set_default(Action::respond(200, std::string(5000, 'x')));
  ia::HttpClient c;
  auto opts = fast_options();
  opts.max_response_bytes = 1000;
  const auto r = c.perform(get(srv.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::TooLarge);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(srv.request_count(), 1u);
  EXPECT_TRUE(r.body.empty());
  EXPECT_NE(r.error.find("1000 bytes"), std::string::npos) << r.error;
}

TEST(HttpClient, SizeCapWithoutContentLengthIsEnforcedInWriteCallback) {
  TestServer srv;
  Action huge = Action::respond(200, std::string(50000, 'y'));
  huge.chunked = true;
  srv.set_default(huge);
  ia::HttpClient c;
  auto opts = fast_options();
  opts.max_response_bytes = 1000;
  const auto r = c.perform(get(srv.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::TooLarge);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(srv.request_count(), 1u);
}

TEST(HttpClient, HugeDeclaredLengthRejectedUpFront) {
  TestServer srv;
  Action huge = Action::respond(200, "tiny");
  huge.declared_length = 1LL << 40;  // announces 1 TiB, sends 4 bytes, then waits
  srv.set_default(huge);
  ia::HttpClient c;
  auto opts = fast_options();
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = c.perform(get(srv.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::TooLarge);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_LT(since(t0), 1.5);  // not waiting for the 2 s total timeout
}

TEST(HttpClient, BodyExactlyAtCapIsAccepted) {
  TestServer srv;
  Action a = Action::respond(200, std::string(1000, 'z'));
  a.chunked = true;
  srv.set_default(a);
  ia::HttpClient c;
  auto opts = fast_options();
  opts.max_response_bytes = 1000;
  const auto r = c.perform(get(srv.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Response);
  EXPECT_EQ(r.body.size(), 1000u);
}

TEST(HttpClient, TrickledBodyArrivesWhole) {
  TestServer srv;
  Action a = Action::respond(200, std::string(200, 't'));
  a.trickle_chunks = 10;
  a.trickle_interval_ms = 20;
  srv.set_default(a);
  ia::HttpClient c;
  const auto r = c.perform(get(srv.url()), fast_options(), kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Response);
  EXPECT_EQ(r.body, std::string(200, 't'));
}

TEST(HttpClient, TrickleSlowerThanTotalTimeoutTimesOut) {
  TestServer srv;
  Action a = Action::respond(200, std::string(100, 't'));
  a.trickle_chunks = 100;
  a.trickle_interval_ms = 50;  // 5 s in total
  srv.set_default(a);
  ia::HttpClient c;
  auto opts = fast_options();
  opts.total_timeout_ms = 300;
  opts.retry.max_attempts = 1;
  const auto r = c.perform(get(srv.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Timeout);
  EXPECT_EQ(r.attempts, 1);
}

TEST(HttpClient, RetryAfterSecondsIsHonoured) {
  TestServer srv;
  srv.enqueue(Action::respond(429, "Too Many Requests", {"Retry-After: 1"}));
  srv.enqueue(Action::respond(200, "ok"));
  ia::HttpClient c;
  std::vector<ia::AttemptInfo> seen;
  c.set_attempt_observer([&](const ia::AttemptInfo& i) { seen.push_back(i); });
  auto opts = fast_options();
  opts.retry.base_delay_ms = 1;
  opts.retry.max_delay_ms = 5000;
  const auto r = c.perform(get(srv.url()), opts, kNever);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.rate_limited, 1);
  EXPECT_GE(r.elapsed_seconds, 0.95);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].outcome.status, 429);
  EXPECT_TRUE(seen[0].outcome.has_retry_after);
  EXPECT_EQ(seen[0].outcome.retry_after, "1");
  EXPECT_TRUE(seen[0].decision.retry);
  EXPECT_EQ(seen[0].decision.delay_ms, 1000);
  EXPECT_EQ(seen[0].host, srv.host_port());
}

TEST(HttpClient, RetryAfterIsCappedAtMaxDelay) {
  TestServer srv;
  srv.enqueue(Action::respond(503, "later", {"Retry-After: 3600"}));
  srv.enqueue(Action::respond(200, "ok"));
  ia::HttpClient c;
  auto opts = fast_options();
  opts.retry.max_delay_ms = 150;
  const auto r = c.perform(get(srv.url()), opts, kNever);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GE(r.elapsed_seconds, 0.14);
  EXPECT_LT(r.elapsed_seconds, 3.0);
}

TEST(HttpClient, SeveralRequestsInFlightConcurrently) {
  TestServer srv;
  Action slow = Action::respond(200, "slow");
  slow.delay_ms = 300;
  srv.set_default(slow);
  ia::HttpClient c;
  for (uint64_t tag = 1; tag <= 4; ++tag) c.submit(get(srv.url(), tag), fast_options());
  EXPECT_EQ(c.pending(), 4u);
  const auto results = drain(c);
  ASSERT_EQ(results.size(), 4u);
  std::set<uint64_t> tags;
  for (const auto& r : results) {
    EXPECT_EQ(r.status, 200);
    tags.insert(r.tag);
  }
  EXPECT_EQ(tags, (std::set<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(c.pending(), 0u);
  EXPECT_GT(srv.max_concurrent_requests(), 1);
  EXPECT_GT(srv.connections_accepted(), 1);
}

TEST(HttpClient, ReusesOneConnectionForSequentialRequests) {
  TestServer srv;
  ia::HttpClient c;
  for (int i = 0; i < 5; ++i) {
    const auto r = c.perform(get(srv.url("/n/" + std::to_string(i))), fast_options(), kNever);
    EXPECT_EQ(r.status, 200);
  }
  // a 429 answer and its retry keep the connection too
  srv.enqueue(Action::respond(429, "slow down"));
  EXPECT_EQ(c.perform(get(srv.url()), fast_options(), kNever).attempts, 2);
  EXPECT_EQ(srv.request_count(), 7u);
  EXPECT_EQ(srv.connections_accepted(), 1);
}

TEST(HttpClient, PerformAbortsOnHangingServer) {
  TestServer srv;
  srv.set_default(Action::of(Action::Kind::Hang));
  ia::HttpClient c;
  auto opts = fast_options();
  opts.total_timeout_ms = 10000;
  const auto t0 = std::chrono::steady_clock::now();
  int calls = 0;
  auto should_abort = [&] {
    ++calls;
    return since(t0) > 0.2;
  };
  EXPECT_THROW(c.perform(get(srv.url()), opts, should_abort), ia::HttpAborted);
  const double took = since(t0);
  EXPECT_LT(took, 3.0);
  EXPECT_GE(took, 0.2);
  EXPECT_GE(calls, 2);
  EXPECT_EQ(c.pending(), 0u);

  // the client (and its multi handle) stays usable
  srv.set_default(Action::respond(200, "back"));
  const auto r = c.perform(get(srv.url()), fast_options(), kNever);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "back");
}

TEST(HttpClient, PerformAbortsWhileWaitingForRetry) {
  TestServer srv;
  srv.set_default(Action::respond(429, "slow down", {"Retry-After: 30"}));
  ia::HttpClient c;
  auto opts = fast_options();
  opts.retry.max_delay_ms = 60000;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(c.perform(get(srv.url()), opts, [&] { return since(t0) > 0.2; }), ia::HttpAborted);
  EXPECT_LT(since(t0), 3.0);
  EXPECT_EQ(c.pending(), 0u);
}

TEST(HttpClient, AbortAllDropsPendingAndStaysUsable) {
  TestServer srv;
  srv.set_default(Action::of(Action::Kind::Hang));
  ia::HttpClient c;
  c.submit(get(srv.url(), 1), fast_options());
  c.submit(get(srv.url(), 2), fast_options());
  EXPECT_TRUE(c.poll(50).empty());
  EXPECT_EQ(c.pending(), 2u);
  c.abort_all();
  EXPECT_EQ(c.pending(), 0u);
  EXPECT_TRUE(c.poll(0).empty());
  srv.set_default(Action::respond(200, "ok"));
  c.submit(get(srv.url(), 3), fast_options());
  const auto rs = drain(c);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].tag, 3u);
  EXPECT_EQ(rs[0].status, 200);
}

TEST(HttpClient, PerformKeepsResultsOfOtherSubmittedRequests) {
  TestServer srv;
  ia::HttpClient c;
  c.submit(get(srv.url("/a"), 1), fast_options());
  const auto r = c.perform(get(srv.url("/b"), 2), fast_options(), kNever);
  EXPECT_EQ(r.tag, 2u);
  const auto rest = drain(c);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].tag, 1u);
  EXPECT_EQ(rest[0].status, 200);
}

TEST(HttpClient, PollReturnsEarlyWhenSomethingFinishes) {
  TestServer srv;
  ia::HttpClient c;
  c.submit(get(srv.url(), 9), fast_options());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<ia::HttpResult> got;
  while (got.empty() && since(t0) < 5) got = c.poll(5000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].tag, 9u);
  EXPECT_LT(since(t0), 4.0);
}

TEST(HttpClient, OnlyHttpAndHttpsAreAllowed) {
  TestServer srv;
  ia::HttpClient c;
  for (const std::string& url : {"ftp://" + srv.host_port() + "/", std::string("file:///etc/passwd"),
                                std::string("not a url"), std::string("")}) {
    const auto r = c.perform(get(url), fast_options(), kNever);
    EXPECT_EQ(r.outcome, ia::TransportOutcome::OtherError) << url;
    EXPECT_LE(r.attempts, 1) << url;
    EXPECT_FALSE(r.error.empty());
    EXPECT_EQ(r.error.find("Api-Key"), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find("passwd"), std::string::npos) << r.error;
  }
  EXPECT_EQ(srv.request_count(), 0u);
  EXPECT_EQ(c.pending(), 0u);
}

TEST(HttpClient, RejectsHeaderInjectionAndBadMethod) {
  ia::HttpClient c;
  auto req = get("http://127.0.0.1:1/");
  req.headers.push_back("X-Evil: a\r\nHost: b");
  EXPECT_THROW(c.submit(req, fast_options()), std::invalid_argument);
  auto req2 = get("http://127.0.0.1:1/");
  req2.method = "get me";
  EXPECT_THROW(c.submit(req2, fast_options()), std::invalid_argument);
  EXPECT_EQ(c.pending(), 0u);
}

TEST(HttpClient, ObserverSeesEveryAttempt) {
  TestServer srv;
  srv.enqueue(Action::respond(503, "a"));
  srv.enqueue(Action::respond(429, "b"));
  srv.enqueue(Action::respond(200, "c"));
  ia::HttpClient c;
  std::vector<ia::AttemptInfo> seen;
  c.set_attempt_observer([&](const ia::AttemptInfo& i) { seen.push_back(i); });
  auto req = get(srv.url(), 77);
  const auto r = c.perform(req, fast_options(), kNever);
  EXPECT_EQ(r.attempts, 3);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].outcome.status, 503);
  EXPECT_EQ(seen[1].outcome.status, 429);
  EXPECT_EQ(seen[2].outcome.status, 200);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(seen[i].attempt, i + 1);
    EXPECT_EQ(seen[i].tag, 77u);
    EXPECT_GE(seen[i].outcome.latency_seconds, 0.0);
    EXPECT_LE(seen[i].decision.delay_ms, 20);
  }
  EXPECT_FALSE(seen[2].decision.retry);
}

TEST(HttpClient, ProcessInstanceIsOneLongLivedClient) {
  ia::HttpClient& a = ia::HttpClient::process_instance();
  ia::HttpClient& b = ia::HttpClient::process_instance();
  EXPECT_EQ(&a, &b);
  TestServer srv;
  EXPECT_EQ(a.perform(get(srv.url()), fast_options(), kNever).status, 200);
  EXPECT_EQ(b.perform(get(srv.url()), fast_options(), kNever).status, 200);
  EXPECT_EQ(srv.connections_accepted(), 1);
  EXPECT_EQ(a.pending(), 0u);
}

// ---------------------------------------------------------------------------------------------
// TLS: an `openssl s_server -www` child on 127.0.0.1 with a self-signed certificate.

namespace {

class TlsServer {
 public:
  // san: e.g. "IP:127.0.0.1" or "DNS:wrong.example"
  explicit TlsServer(const std::string& san) {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) return;
    char tmpl[] = "/tmp/ia_http_tls_XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir_ = tmpl;
    cert_ = dir_ + "/cert.pem";
    const std::string key = dir_ + "/key.pem";
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        "-subj /CN=ia-test -addext subjectAltName=" +
        san + " -keyout " + key + " -out " + cert_ + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) return;
    port_ = iatest::closed_port();
    const std::string accept = "127.0.0.1:" + std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      const int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execlp("openssl", "openssl", "s_server", "-accept", accept.c_str(), "-cert", cert_.c_str(),
             "-key", key.c_str(), "-www", "-quiet", static_cast<char*>(nullptr));
      _exit(127);
    }
    // wait until it accepts connections
    for (int i = 0; i < 100 && pid_ > 0; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(port_));
      const bool up = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      close(fd);
      if (up) {
        ready_ = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  }
  ~TlsServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  bool ready() const { return ready_; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/"; }
  const std::string& cert() const { return cert_; }

 private:
  std::string dir_, cert_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool ready_ = false;
};

}  // namespace

TEST(HttpClient, TlsVerifiesPeerAndHost) {
  TlsServer good("IP:127.0.0.1");
  if (!good.ready()) GTEST_SKIP() << "openssl s_server not available";
  ia::HttpClient c;
  auto opts = fast_options();

  // self-signed and not in the system bundle: verification fails, not retried
  auto r = c.perform(get(good.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::TlsError) << r.error;
  EXPECT_EQ(r.attempts, 1);
  EXPECT_NE(r.error.find("TLS error with 127.0.0.1:"), std::string::npos) << r.error;

  // trusted through ca_file: works
  opts.ca_file = good.cert();
  r = c.perform(get(good.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::Response) << r.error;
  EXPECT_EQ(r.status, 200);

  // trusted certificate for another name: host verification fails
  TlsServer wrong("DNS:wrong.example");
  ASSERT_TRUE(wrong.ready());
  opts.ca_file = wrong.cert();
  r = c.perform(get(wrong.url()), opts, kNever);
  EXPECT_EQ(r.outcome, ia::TransportOutcome::TlsError) << r.error;
  EXPECT_EQ(r.attempts, 1);
}

// The request's secret never comes back in the result's text: redacted from the body of an answer
// that is not 2xx, from the content type and from the transport error (issue 16); a 2xx body is
// left as sent, for parsing.
TEST(HttpClient, SecretIsRedactedFromErrorBodiesContentTypeAndErrors) {
  TestServer srv;
  Action refused = Action::respond(400, std::string(R"({"msg":"request {\"headers\": [\")") + kApiKey +
                                            R"(\"]} refused","code":"BadParams"})");
  refused.content_type = std::string("text/x-") + kApiKey;
  srv.enqueue(refused);
  srv.enqueue(Action::respond(200, std::string(R"({"echo":")") + kApiKey + "\"}"));
  ia::HttpClient c;
  auto req = get(srv.url("/api/lists/subscribe"));
  req.secret = kApiKey;
  const auto r = c.perform(req, fast_options(), kNever);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"msg":"request {\"headers\": [\"[redacted]\"]} refused","code":"BadParams"})");
  EXPECT_EQ(r.content_type, "text/x-[redacted]");
  const auto ok = c.perform(req, fast_options(), kNever);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, std::string(R"({"echo":")") + kApiKey + "\"}");

  // curl's error text names the host: a key that happens to spell it is redacted there too.
  const int port = iatest::closed_port();
  auto unreachable = get("http://localhost:" + std::to_string(port) + "/x");
  unreachable.secret = "LocalHost";
  auto opts = fast_options();
  opts.retry.max_attempts = 1;
  const auto e = c.perform(unreachable, opts, kNever);
  EXPECT_EQ(e.outcome, ia::TransportOutcome::ConnectFailed);
  EXPECT_FALSE(ia::contains_secret(e.error, "localhost")) << e.error;
  EXPECT_NE(e.error.find("[redacted]"), std::string::npos) << e.error;
}
