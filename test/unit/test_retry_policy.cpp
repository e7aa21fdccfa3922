// Pure tests of ia::decide_retry and Retry-After parsing (seeded rng, no clock, no network).
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "core/retry_policy.hpp"

using ia::AttemptOutcome;
using ia::RetryPolicy;
using ia::TransportOutcome;

namespace {

AttemptOutcome response(long status) {
  AttemptOutcome o;
  o.transport = TransportOutcome::Response;
  o.status = status;
  return o;
}

AttemptOutcome transport(TransportOutcome t) {
  AttemptOutcome o;
  o.transport = t;
  return o;
}

AttemptOutcome with_retry_after(long status, const std::string& value, std::time_t now) {
  AttemptOutcome o = response(status);
  o.has_retry_after = true;
  o.retry_after = value;
  o.received_at = now;
  return o;
}

constexpr std::int64_t kRfcExample = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

}  // namespace

TEST(RetryPolicy, Defaults) {
  RetryPolicy p;
  EXPECT_EQ(p.max_attempts, 5);
  EXPECT_EQ(p.base_delay_ms, 500);
  EXPECT_EQ(p.max_delay_ms, 30000);
}

TEST(RetryPolicy, RetryableOutcomes) {
  RetryPolicy p;
  std::mt19937_64 rng(1);
  for (long s : {429L, 500L, 501L, 502L, 503L, 504L, 599L}) {
    EXPECT_TRUE(ia::decide_retry(p, 1, response(s), rng).retry) << s;
  }
  for (auto t : {TransportOutcome::Timeout, TransportOutcome::ConnectFailed,
                 TransportOutcome::ConnectionDropped}) {
    EXPECT_TRUE(ia::decide_retry(p, 1, transport(t), rng).retry) << ia::transport_outcome_name(t);
  }
}

TEST(RetryPolicy, NonRetryableOutcomes) {
  RetryPolicy p;
  std::mt19937_64 rng(1);
  for (long s : {200L, 201L, 204L, 301L, 302L, 304L, 400L, 401L, 403L, 404L, 405L, 408L, 409L, 413L,
                 422L, 499L, 600L}) {
    const auto d = ia::decide_retry(p, 1, response(s), rng);
    EXPECT_FALSE(d.retry) << s;
    EXPECT_EQ(d.delay_ms, 0) << s;
  }
  for (auto t : {TransportOutcome::TooLarge, TransportOutcome::TlsError, TransportOutcome::Aborted,
                 TransportOutcome::OtherError}) {
    EXPECT_FALSE(ia::decide_retry(p, 1, transport(t), rng).retry) << ia::transport_outcome_name(t);
  }
  // a Retry-After does not make a 400 retryable
  EXPECT_FALSE(ia::decide_retry(p, 1, with_retry_after(400, "1", kRfcExample), rng).retry);
}

TEST(RetryPolicy, StopsAtMaxAttempts) {
  RetryPolicy p;
  p.max_attempts = 3;
  std::mt19937_64 rng(2);
  EXPECT_TRUE(ia::decide_retry(p, 1, response(503), rng).retry);
  EXPECT_TRUE(ia::decide_retry(p, 2, response(503), rng).retry);
  EXPECT_FALSE(ia::decide_retry(p, 3, response(503), rng).retry);
  EXPECT_FALSE(ia::decide_retry(p, 4, response(503), rng).retry);
  p.max_attempts = 1;
  EXPECT_FALSE(ia::decide_retry(p, 1, response(429), rng).retry);
  p.max_attempts = 0;  // treated as 1
  EXPECT_FALSE(ia::decide_retry(p, 1, response(429), rng).retry);
}

TEST(RetryPolicy, FullJitterBoundsPerAttempt) {
  RetryPolicy p;
  p.max_attempts = 100;
  p.base_delay_ms = 100;
  p.max_delay_ms = 100000;
  std::mt19937_64 rng(12345);
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const long ceiling = 100L << (attempt - 1);
    long lo = std::numeric_limits<long>::max(), hi = -1;
    for (int i = 0; i < 2000; ++i) {
      const auto d = ia::decide_retry(p, attempt, response(503), rng);
      ASSERT_TRUE(d.retry);
      ASSERT_GE(d.delay_ms, 0);
      ASSERT_LE(d.delay_ms, ceiling) << "attempt " << attempt;
      lo = std::min(lo, d.delay_ms);
      hi = std::max(hi, d.delay_ms);
    }
    // full jitter spreads over the whole range
    EXPECT_LT(lo, ceiling / 10) << "attempt " << attempt;
    EXPECT_GT(hi, ceiling * 9 / 10) << "attempt " << attempt;
  }
}

TEST(RetryPolicy, DelayIsCappedAndDoesNotOverflow) {
  RetryPolicy p;
  p.max_attempts = 1000;
  p.base_delay_ms = 1000;
  p.max_delay_ms = 3000;
  std::mt19937_64 rng(7);
  long hi = 0;
  for (int attempt : {3, 4, 10, 63, 64, 65, 500, 999}) {
    for (int i = 0; i < 500; ++i) {
      const auto d = ia::decide_retry(p, attempt, transport(TransportOutcome::Timeout), rng);
      ASSERT_TRUE(d.retry);
      ASSERT_GE(d.delay_ms, 0);
      ASSERT_LE(d.delay_ms, 3000) << attempt;
      hi = std::max(hi, d.delay_ms);
    }
  }
  EXPECT_GT(hi, 2700);
  // a base above the cap is capped too
  p.base_delay_ms = 10000;
  for (int i = 0; i < 200; ++i)
    ASSERT_LE(ia::decide_retry(p, 1, response(500), rng).delay_ms, 3000);
  // zero base: immediate retries
  p.base_delay_ms = 0;
  EXPECT_EQ(ia::decide_retry(p, 5, response(500), rng).delay_ms, 0);
}

TEST(RetryPolicy, SameSeedSameDelays) {
  RetryPolicy p;
  std::mt19937_64 a(99), b(99);
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(ia::decide_retry(p, i, response(429), a).delay_ms,
              ia::decide_retry(p, i, response(429), b).delay_ms);
  }
}

TEST(RetryPolicy, RetryAfterSecondsWins) {
  RetryPolicy p;
  p.max_delay_ms = 30000;
  std::mt19937_64 rng(3);
  for (int attempt : {1, 2, 4}) {
    const auto d = ia::decide_retry(p, attempt, with_retry_after(429, "7", kRfcExample), rng);
    EXPECT_TRUE(d.retry);
    EXPECT_EQ(d.delay_ms, 7000);
  }
  EXPECT_EQ(ia::decide_retry(p, 1, with_retry_after(503, " 3 ", kRfcExample), rng).delay_ms, 3000);
  EXPECT_EQ(ia::decide_retry(p, 1, with_retry_after(429, "0", kRfcExample), rng).delay_ms, 0);
  // capped at max_delay_ms
  EXPECT_EQ(ia::decide_retry(p, 1, with_retry_after(429, "120", kRfcExample), rng).delay_ms, 30000);
  EXPECT_EQ(ia::decide_retry(p, 1, with_retry_after(429, "99999999999999999999999", kRfcExample),
                              rng)
                .delay_ms,
            30000);
  // still bounded by max_attempts
  p.max_attempts = 2;
  EXPECT_FALSE(ia::decide_retry(p, 2, with_retry_after(429, "1", kRfcExample), rng).retry);
}

TEST(RetryPolicy, RetryAfterHttpDateWins) {
  RetryPolicy p;
  std::mt19937_64 rng(4);
  const std::time_t now = static_cast<std::time_t>(kRfcExample - 12);
  for (const char* v : {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                        "Sun Nov  6 08:49:37 1994"}) {
    const auto d = ia::decide_retry(p, 1, with_retry_after(429, v, now), rng);
    EXPECT_TRUE(d.retry) << v;
    EXPECT_EQ(d.delay_ms, 12000) << v;
  }
  // a date in the past: retry at once
  const auto past = ia::decide_retry(
      p, 1, with_retry_after(503, "Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample + 100), rng);
  EXPECT_TRUE(past.retry);
  EXPECT_EQ(past.delay_ms, 0);
  // far future: capped
  EXPECT_EQ(
      ia::decide_retry(p, 1, with_retry_after(429, "Fri, 31 Dec 9999 23:59:59 GMT", now), rng)
          .delay_ms,
      30000);
}

TEST(RetryPolicy, UnparseableRetryAfterFallsBackToBackoff) {
  RetryPolicy p;
  p.base_delay_ms = 100;
  std::mt19937_64 rng(5);
  for (const char* v : {"soon", "-5", "1.5", "", "Sun, 06 Nov 1994 08:49:37 PST"}) {
    for (int i = 0; i < 100; ++i) {
      const auto d = ia::decide_retry(p, 1, with_retry_after(429, v, kRfcExample), rng);
      ASSERT_TRUE(d.retry) << v;
      ASSERT_LE(d.delay_ms, 100) << v;
    }
  }
}

TEST(RetryPolicy, ParseHttpDate) {
  EXPECT_EQ(ia::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);
  EXPECT_EQ(ia::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), kRfcExample);
  EXPECT_EQ(ia::parse_http_date("Sun Nov  6 08:49:37 1994"), kRfcExample);
  EXPECT_EQ(ia::parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT  "), kRfcExample);
  EXPECT_EQ(ia::parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(ia::parse_http_date("Sat, 29 Feb 2020 12:00:00 GMT"), 1582977600);
  EXPECT_EQ(ia::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"), 1445412480);
  EXPECT_EQ(ia::parse_http_date("Friday, 01-Jan-21 00:00:00 GMT"), 1609459200);
  for (const char* bad : {"", "garbage", "Sun, 06 Xyz 1994 08:49:37 GMT",
                          "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
                          "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 06 Nov 1994 08:49:37 GMT trailing",
                          "1994-11-06T08:49:37Z", "Sun, 06 Nov 1994"}) {
    EXPECT_FALSE(ia::parse_http_date(bad).has_value()) << bad;
  }
}

TEST(RetryPolicy, ParseRetryAfterMs) {
  EXPECT_EQ(ia::parse_retry_after_ms("0", 0), 0);
  EXPECT_EQ(ia::parse_retry_after_ms("2", 0), 2000);
  EXPECT_EQ(ia::parse_retry_after_ms("\t10 ", 0), 10000);
  EXPECT_EQ(ia::parse_retry_after_ms("99999999999999999999999", 0),
            std::numeric_limits<long>::max());
  EXPECT_EQ(ia::parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample - 1), 1000);
  EXPECT_EQ(ia::parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample + 1), 0);
  EXPECT_FALSE(ia::parse_retry_after_ms("", 0).has_value());
  EXPECT_FALSE(ia::parse_retry_after_ms("-1", 0).has_value());
  EXPECT_FALSE(ia::parse_retry_after_ms("1e3", 0).has_value());
}

TEST(RetryPolicy, OutcomeNames) {
  EXPECT_STREQ(ia::transport_outcome_name(TransportOutcome::Response), "response");
  EXPECT_STREQ(ia::transport_outcome_name(TransportOutcome::Timeout), "timeout");
  EXPECT_STREQ(ia::transport_outcome_name(TransportOutcome::TooLarge), "too_large");
}
