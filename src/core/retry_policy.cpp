#include "core/retry_policy.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>

namespace ia {

const char* transport_outcome_name(TransportOutcome outcome) {
  switch (outcome) {
    case TransportOutcome::Response: return "response";
    case TransportOutcome::Timeout: return "timeout";
    case TransportOutcome::ConnectFailed: return "connect_failed";
    case TransportOutcome::ConnectionDropped: return "connection_dropped";
    case TransportOutcome::TooLarge: return "too_large";
    case TransportOutcome::TlsError: return "tls_error";
    case TransportOutcome::Aborted: return "aborted";
    case TransportOutcome::OtherError: return "other_error";
  }
  return "unknown";
}

bool is_retryable(const AttemptOutcome& outcome) {
  switch (outcome.transport) {
    case TransportOutcome::Response:
      return outcome.status == 429 || (outcome.status >= 500 && outcome.status <= 599);
    case TransportOutcome::Timeout:
    case TransportOutcome::ConnectFailed:
    case TransportOutcome::ConnectionDropped:
      return true;
    case TransportOutcome::TooLarge:
    case TransportOutcome::TlsError:
    case TransportOutcome::Aborted:
    case TransportOutcome::OtherError:
      return false;
  }
  return false;
}

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

int month_index(const char* name) {
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (std::strlen(name) != 3) return -1;
  for (int i = 0; i < 12; ++i) {
    if (std::tolower(static_cast<unsigned char>(name[0])) ==
            std::tolower(static_cast<unsigned char>(kMonths[i][0])) &&
        std::tolower(static_cast<unsigned char>(name[1])) ==
            std::tolower(static_cast<unsigned char>(kMonths[i][1])) &&
        std::tolower(static_cast<unsigned char>(name[2])) ==
            std::tolower(static_cast<unsigned char>(kMonths[i][2])))
      return i + 1;
  }
  return -1;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool all_consumed(const std::string& s, int pos) {
  if (pos < 0) return false;
  for (size_t i = static_cast<size_t>(pos); i < s.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_http_date(const std::string& raw) {
  const std::string s = trim(raw);
  if (s.empty() || s.size() > 64) return std::nullopt;
  int day = 0, year = 0, hh = 0, mm = 0, ss = 0, pos = -1;
  char mon[8] = {0}, zone[8] = {0}, dow[16] = {0};
  const size_t comma = s.find(',');
  if (comma != std::string::npos) {
    const std::string rest = s.substr(comma + 1);
    if (rest.find('-') != std::string::npos) {
      // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
      if (std::sscanf(rest.c_str(), " %2d-%3[A-Za-z]-%4d %2d:%2d:%2d %3s%n", &day, mon, &year, &hh,
                      &mm, &ss, zone, &pos) != 7)
        return std::nullopt;
      if (year < 100) year += (year < 70) ? 2000 : 1900;
    } else {
      // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
      if (std::sscanf(rest.c_str(), " %2d %3s %4d %2d:%2d:%2d %3s%n", &day, mon, &year, &hh, &mm,
                      &ss, zone, &pos) != 7)
        return std::nullopt;
    }
    if (!all_consumed(rest, pos)) return std::nullopt;
    if (std::strcmp(zone, "GMT") != 0 && std::strcmp(zone, "UTC") != 0) return std::nullopt;
  } else {
    // asctime: "Sun Nov  6 08:49:37 1994"
    if (std::sscanf(s.c_str(), "%15s %3s %2d %2d:%2d:%2d %4d%n", dow, mon, &day, &hh, &mm, &ss,
                    &year, &pos) != 7)
      return std::nullopt;
    if (!all_consumed(s, pos)) return std::nullopt;
  }
  const int month = month_index(mon);
  if (month < 0 || day < 1 || day > 31 || year < 1900 || year > 9999 || hh < 0 || hh > 23 ||
      mm < 0 || mm > 59 || ss < 0 || ss > 60)
    return std::nullopt;
  const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month),
                                            static_cast<unsigned>(day));
  return days * 86400 + hh * 3600 + mm * 60 + ss;
}

std::optional<long> parse_retry_after_ms(const std::string& raw, std::time_t now) {
  const std::string s = trim(raw);
  if (s.empty()) return std::nullopt;
  constexpr long kMaxLong = std::numeric_limits<long>::max();
  if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delta-seconds; saturate instead of overflowing
    long long secs = 0;
    for (char c : s) {
      secs = secs * 10 + (c - '0');
      if (secs > kMaxLong / 1000) return kMaxLong;
    }
    return static_cast<long>(secs * 1000);
  }
  const auto when = parse_http_date(s);
  if (!when) return std::nullopt;
  const std::int64_t delta = *when - static_cast<std::int64_t>(now);
  if (delta <= 0) return 0L;
  if (delta > kMaxLong / 1000) return kMaxLong;
  return static_cast<long>(delta * 1000);
}

RetryDecision decide_retry(const RetryPolicy& policy, int attempt, const AttemptOutcome& outcome,
                           std::mt19937_64& rng) {
  if (!is_retryable(outcome)) return {false, 0};
  const int max_attempts = std::max(1, policy.max_attempts);
  if (attempt < 1) attempt = 1;
  if (attempt >= max_attempts) return {false, 0};
  const long cap = std::max(0L, policy.max_delay_ms);

  if (outcome.has_retry_after) {
    const std::time_t now = outcome.received_at != 0 ? outcome.received_at : std::time(nullptr);
    const auto ms = parse_retry_after_ms(outcome.retry_after, now);
    if (ms) return {true, std::min(*ms, cap)};
    // unparseable Retry-After: fall back to the backoff below
  }

  // ceiling = min(cap, base * 2^(attempt-1)), computed without overflow
  long ceiling = std::min(std::max(0L, policy.base_delay_ms), cap);
  for (int i = 1; i < attempt && ceiling < cap; ++i)
    ceiling = (ceiling > cap / 2) ? cap : ceiling * 2;
  std::uniform_int_distribution<long> dist(0, ceiling);
  return {true, dist(rng)};
}

}  // namespace ia
