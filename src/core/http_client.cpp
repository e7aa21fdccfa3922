#include "core/http_client.hpp"
#include "core/redaction.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <mutex>
#include <utility>

namespace ia {

namespace {

using Clock = std::chrono::steady_clock;

CURLM* M(void* p) { return static_cast<CURLM*>(p); }

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

bool iequals_prefix(const char* data, size_t len, const char* name) {
  const size_t n = std::strlen(name);
  if (len < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(data[i])) !=
        std::tolower(static_cast<unsigned char>(name[i])))
      return false;
  return true;
}

// Value of a "Name: value\r\n" header line if its name is `name` (case-insensitive).
bool header_value(const char* data, size_t len, const char* name, std::string& out) {
  const size_t n = std::strlen(name);
  if (!iequals_prefix(data, len, name) || len <= n || data[n] != ':') return false;
  size_t b = n + 1, e = len;
  while (b < e && (data[b] == ' ' || data[b] == '\t')) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(data[e - 1]))) --e;
  out.assign(data + b, e - b);
  return true;
}

void global_init_once() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK)
    throw std::runtime_error(std::string("curl_global_init failed: ") + curl_easy_strerror(rc));
}

// "host:port" of a URL, without user info, path or query (they may hold secrets).
std::string host_port_of(const std::string& url, bool& ok) {
  ok = false;
  std::string out = "(invalid URL)";
  CURLU* u = curl_url();
  if (!u) return out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
      out = host;
      ok = true;
      if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK && port) {
        out += ":";
        out += port;
      }
    }
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

bool valid_method(const std::string& m) {
  if (m.empty() || m.size() > 32) return false;
  return std::all_of(m.begin(), m.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool has_header(const std::vector<std::string>& headers, const char* name) {
  for (const auto& h : headers) {
    const size_t n = std::strlen(name);
    if (h.size() >= n + 1 && iequals_prefix(h.data(), h.size(), name) &&
        (h[n] == ':' || h[n] == ';'))
      return true;
  }
  return false;
}

}  // namespace

struct HttpClient::Transfer {
  uint64_t seq = 0;
  HttpRequest req;
  HttpOptions opts;
  std::string host;  // "host:port"
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  Clock::time_point submitted, attempt_started, retry_at;
  int attempts = 0;
  int rate_limited = 0;

  // Per attempt; written by the curl callbacks, which never throw.
  std::string body;
  std::string content_type;
  std::string retry_after;
  bool has_retry_after = false;
  bool too_large = false;
  bool callback_failed = false;
  char errbuf[CURL_ERROR_SIZE] = {0};

  // Of the last finished attempt, for the final error text.
  int last_code = CURLE_OK;
  bool last_connected = false;
  std::string last_curl_error;

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (easy) curl_easy_cleanup(easy);
    if (headers) curl_slist_free_all(headers);
  }

  void reset_attempt() {
    body.clear();
    content_type.clear();
    retry_after.clear();
    has_retry_after = false;
    too_large = false;
    callback_failed = false;
    errbuf[0] = '\0';
  }

  // --- curl callbacks: never throw, never fail loudly: set a flag, return the abort code ---
  static size_t on_write(char* data, size_t size, size_t nmemb, void* userp) noexcept {
    auto* t = static_cast<Transfer*>(userp);
    const size_t n = size * nmemb;
    try {
      if (n > t->opts.max_response_bytes || t->body.size() > t->opts.max_response_bytes - n) {
        t->too_large = true;
        return 0;  // CURLE_WRITE_ERROR
      }
      t->body.append(data, n);
      return n;
    } catch (...) {
      t->callback_failed = true;
      return 0;
    }
  }

  static size_t on_header(char* data, size_t size, size_t nitems, void* userp) noexcept {
    auto* t = static_cast<Transfer*>(userp);
    const size_t n = size * nitems;
    try {
      if (iequals_prefix(data, n, "HTTP/")) {
        // a new status line (e.g. after "100 Continue"): forget earlier headers
        t->content_type.clear();
        t->retry_after.clear();
        t->has_retry_after = false;
      } else if (header_value(data, n, "Content-Type", t->content_type)) {
        if (t->content_type.size() > 256) t->content_type.resize(256);
      } else if (header_value(data, n, "Retry-After", t->retry_after)) {
        if (t->retry_after.size() > 64) t->retry_after.resize(64);
        t->has_retry_after = true;
      }
      return n;
    } catch (...) {
      t->callback_failed = true;
      return 0;  // CURLE_WRITE_ERROR
    }
  }
};

// ---------------------------------------------------------------------------------------------

HttpClient& HttpClient::process_instance() {
  // Process-local and never destroyed; recreated in a forked child (the parent owns the sockets of
  // the inherited one, so the child must neither use nor clean it up).
  static HttpClient* instance = nullptr;
  static pid_t owner = 0;
  const pid_t me = getpid();
  if (instance == nullptr || owner != me) {
    instance = new HttpClient();
    owner = me;
  }
  return *instance;
}

HttpClient::HttpClient() {
  global_init_once();
  multi_ = curl_multi_init();
  if (!multi_) throw std::runtime_error("curl_multi_init failed");
  std::random_device rd;
  rng_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
}

HttpClient::~HttpClient() {
  abort_all();
  curl_multi_cleanup(M(multi_));
}

void HttpClient::seed_jitter(uint64_t seed) { rng_.seed(seed); }

void HttpClient::set_attempt_observer(std::function<void(const AttemptInfo&)> observer) {
  observer_ = std::move(observer);
}

size_t HttpClient::pending() const { return active_.size() + waiting_.size() + done_.size(); }

void HttpClient::abort_all() {
  for (auto& t : active_) curl_multi_remove_handle(M(multi_), t->easy);
  active_.clear();
  waiting_.clear();
  done_.clear();
  observed_.clear();
}

void HttpClient::submit(HttpRequest req, const HttpOptions& opts) {
  submit_internal(std::move(req), opts);
}

uint64_t HttpClient::submit_internal(HttpRequest req, const HttpOptions& opts) {
  if (req.method.empty()) req.method = "GET";
  if (!valid_method(req.method))
    throw std::invalid_argument("HTTP method must be an upper-case token");
  for (const auto& h : req.headers)
    if (h.find_first_of("\r\n") != std::string::npos || h.find(':') == std::string::npos)
      throw std::invalid_argument("HTTP header must be one \"Name: value\" line");  // no echo

  auto t = std::make_unique<Transfer>();
  t->seq = next_seq_++;
  t->req = std::move(req);
  t->opts = opts;
  t->submitted = Clock::now();
  bool url_ok = false;
  t->host = host_port_of(t->req.url, url_ok);
  const uint64_t seq = t->seq;

  auto fail_setup = [&](const std::string& why) {
    t->last_code = CURLE_FAILED_INIT;
    t->last_curl_error = why;
    AttemptOutcome none;
    none.transport = TransportOutcome::OtherError;
    finalize(std::move(t), none);
    return seq;
  };

  if (!url_ok) return fail_setup("invalid URL");
  t->easy = curl_easy_init();
  if (!t->easy) return fail_setup("curl_easy_init failed");

  for (const auto& h : t->req.headers) {
    curl_slist* n = curl_slist_append(t->headers, h.c_str());
    if (!n) return fail_setup("out of memory");
    t->headers = n;
  }
  if (!has_header(t->req.headers, "Expect")) {  // no "100-continue" round trip for large bodies
    curl_slist* n = curl_slist_append(t->headers, "Expect:");
    if (!n) return fail_setup("out of memory");
    t->headers = n;
  }

  CURL* e = t->easy;
  CURLcode rc = CURLE_OK;
  auto set = [&rc](CURLcode r) {
    if (rc == CURLE_OK && r != CURLE_OK) rc = r;
  };
  set(curl_easy_setopt(e, CURLOPT_URL, t->req.url.c_str()));
  set(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
#if LIBCURL_VERSION_NUM >= 0x075500
  set(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
#else
  set(curl_easy_setopt(e, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS)));
  set(curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS,
                       static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS)));
#endif
  set(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L));
  set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L));
  set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L));
  if (!t->opts.ca_file.empty()) set(curl_easy_setopt(e, CURLOPT_CAINFO, t->opts.ca_file.c_str()));
  set(curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, t->opts.connect_timeout_ms)));
  set(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max(1L, t->opts.total_timeout_ms)));
  set(curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                       static_cast<curl_off_t>(std::min<size_t>(t->opts.max_response_bytes,
                                                                static_cast<size_t>(LLONG_MAX)))));
  set(curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L));
#if LIBCURL_VERSION_NUM >= 0x075700
  // Do not block on a stuck resolver thread when a transfer is removed (abort, DNS timeout):
  // an interrupt must take effect promptly; the cost is a small leak in that rare case.
  set(curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L));
#endif
  set(curl_easy_setopt(e, CURLOPT_USERAGENT, t->opts.user_agent.c_str()));
  set(curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers));
  set(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::on_write));
  set(curl_easy_setopt(e, CURLOPT_WRITEDATA, static_cast<void*>(t.get())));
  set(curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Transfer::on_header));
  set(curl_easy_setopt(e, CURLOPT_HEADERDATA, static_cast<void*>(t.get())));
  set(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf));
  set(curl_easy_setopt(e, CURLOPT_PRIVATE, static_cast<void*>(t.get())));

  const std::string& m = t->req.method;
  if (m == "GET" && t->req.body.empty()) {
    set(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L));
  } else if (m == "HEAD") {
    set(curl_easy_setopt(e, CURLOPT_NOBODY, 1L));
  } else if (m != "POST" && t->req.body.empty()) {  // DELETE etc. without a body
    set(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L));
    set(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str()));
  } else {
    // The body lives in the Transfer (heap, stable address) until the easy handle is cleaned up.
    set(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(t->req.body.size())));
    set(curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->req.body.data()));
    if (m != "POST") set(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str()));
  }
  if (rc != CURLE_OK) return fail_setup(std::string("curl setup failed: ") + curl_easy_strerror(rc));

  Transfer& ref = *t;
  active_.push_back(std::move(t));
  start_attempt(ref);  // on failure it finalizes the request (OtherError)
  return seq;
}

// Attaches t (which must be in active_) to the multi handle; on failure finalizes it.
bool HttpClient::start_attempt(Transfer& t) {
  t.reset_attempt();
  t.attempt_started = Clock::now();
  t.attempts++;
  const CURLMcode mc = curl_multi_add_handle(M(multi_), t.easy);
  if (mc == CURLM_OK) return true;
  auto it = std::find_if(active_.begin(), active_.end(),
                         [&](const std::unique_ptr<Transfer>& p) { return p.get() == &t; });
  std::unique_ptr<Transfer> owned = std::move(*it);
  active_.erase(it);
  owned->last_code = CURLE_FAILED_INIT;
  owned->last_curl_error = std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc);
  AttemptOutcome none;
  none.transport = TransportOutcome::OtherError;
  finalize(std::move(owned), none);
  return false;
}

void HttpClient::start_due_retries(Clock::time_point now) {
  for (size_t i = 0; i < waiting_.size();) {
    if (waiting_[i]->retry_at <= now) {
      std::unique_ptr<Transfer> t = std::move(waiting_[i]);
      waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
      Transfer& ref = *t;
      active_.push_back(std::move(t));
      start_attempt(ref);
    } else {
      ++i;
    }
  }
}

namespace {

TransportOutcome classify(CURLcode code, bool too_large, bool callback_failed) {
  switch (code) {
    case CURLE_OK:
      return TransportOutcome::Response;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportOutcome::Timeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportOutcome::ConnectFailed;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return TransportOutcome::ConnectionDropped;
    case CURLE_FILESIZE_EXCEEDED:
      return TransportOutcome::TooLarge;
    case CURLE_WRITE_ERROR:
      if (callback_failed) return TransportOutcome::OtherError;
      return too_large ? TransportOutcome::TooLarge : TransportOutcome::OtherError;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
      return TransportOutcome::TlsError;
    case CURLE_ABORTED_BY_CALLBACK:
      return callback_failed ? TransportOutcome::OtherError : TransportOutcome::Aborted;
    default:
      return TransportOutcome::OtherError;
  }
}

}  // namespace

void HttpClient::finish_attempt(void* easy_handle, int curl_code) {
  CURL* easy = static_cast<CURL*>(easy_handle);
  auto it = std::find_if(active_.begin(), active_.end(),
                         [&](const std::unique_ptr<Transfer>& p) { return p->easy == easy; });
  curl_multi_remove_handle(M(multi_), easy);
  if (it == active_.end()) return;  // not ours (cannot happen)
  std::unique_ptr<Transfer> t = std::move(*it);
  active_.erase(it);

  const Clock::time_point now = Clock::now();
  const CURLcode code = static_cast<CURLcode>(curl_code);
  AttemptOutcome out;
  out.transport = classify(code, t->too_large, t->callback_failed);
  out.latency_seconds = seconds_between(t->attempt_started, now);
  if (out.transport == TransportOutcome::Response) {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    out.status = status;
    out.has_retry_after = t->has_retry_after;
    out.retry_after = t->retry_after;
    out.received_at = std::time(nullptr);
    if (status == 429) t->rate_limited++;
  }
  curl_off_t pretransfer_us = 0;
  curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
  t->last_connected = pretransfer_us > 0;
  t->last_code = code;
  t->last_curl_error = t->errbuf[0] ? std::string(t->errbuf) : std::string(curl_easy_strerror(code));

  const RetryDecision decision = decide_retry(t->opts.retry, t->attempts, out, rng_);

  AttemptInfo info;
  info.tag = t->req.tag;
  info.attempt = t->attempts;
  info.outcome = out;
  info.decision = decision;
  info.host = t->host;
  observed_.push_back(std::move(info));

  if (decision.retry) {
    t->retry_at = now + std::chrono::milliseconds(decision.delay_ms);
    waiting_.push_back(std::move(t));
  } else {
    finalize(std::move(t), out);
  }
}

void HttpClient::finalize(std::unique_ptr<Transfer> t, const AttemptOutcome& last) {
  HttpResult r;
  r.tag = t->req.tag;
  r.outcome = last.transport;
  r.attempts = t->attempts;
  r.rate_limited = t->rate_limited;
  r.elapsed_seconds = seconds_between(t->submitted, Clock::now());
  if (last.transport == TransportOutcome::Response) {
    r.status = last.status;
    r.body = std::move(t->body);
    r.content_type = std::move(t->content_type);
  } else if (t->attempts == 0) {
    r.error = "request not sent: " + t->last_curl_error;
  } else {
    const std::string& h = t->host;
    const HttpOptions& o = t->opts;
    std::string what;
    switch (last.transport) {
      case TransportOutcome::Timeout:
        if (!t->last_connected && o.connect_timeout_ms < o.total_timeout_ms)
          what = "timed out after " + std::to_string(o.connect_timeout_ms) + " ms connecting to " + h;
        else
          what = "timed out after " + std::to_string(o.total_timeout_ms) + " ms waiting for " + h;
        break;
      case TransportOutcome::ConnectFailed:
        what = "could not connect to " + h;
        break;
      case TransportOutcome::ConnectionDropped:
        what = "connection to " + h + " dropped before a complete response";
        break;
      case TransportOutcome::TooLarge:
        what = "response from " + h + " exceeds the limit of " +
               std::to_string(o.max_response_bytes) + " bytes";
        break;
      case TransportOutcome::TlsError:
        what = "TLS error with " + h;
        break;
      case TransportOutcome::Aborted:
        what = "request to " + h + " aborted";
        break;
      default:
        what = "request to " + h + " failed";
        break;
    }
    r.error = what + " (" + std::to_string(t->attempts) +
              (t->attempts == 1 ? " attempt" : " attempts") + "; " + t->last_curl_error + ")";
  }
  // The boundary where outside text enters the extension: the key sent never comes back in it
  // (an echo of the request in an error body, a URL in curl's message). A 2xx body is parsed, and
  // must not change when a short key happens to occur in it; the parser's errors quoting it are
  // redacted by the caller.
  if (!t->req.secret.empty()) {
    const std::string& key = t->req.secret;
    if (r.status < 200 || r.status > 299) r.body = redact_secret(r.body, key);
    r.content_type = redact_secret(r.content_type, key);
    r.error = redact_secret(r.error, key);
  }
  done_.push_back(Done{t->seq, std::move(r)});
  // t (easy handle, header list) is released here; it is no longer attached to the multi handle
}

bool HttpClient::has_done(uint64_t seq) const {
  return std::any_of(done_.begin(), done_.end(), [&](const Done& d) { return d.seq == seq; });
}

void HttpClient::drive(int max_wait_ms, uint64_t want_seq) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(std::max(0, max_wait_ms));
  for (;;) {
    start_due_retries(Clock::now());

    int running = 0;
    const CURLMcode mc = curl_multi_perform(M(multi_), &running);
    if (mc != CURLM_OK)
      throw std::runtime_error(std::string("curl_multi_perform: ") + curl_multi_strerror(mc));
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(M(multi_), &queued)) {
      if (msg->msg == CURLMSG_DONE) finish_attempt(msg->easy_handle, msg->data.result);
    }

    if (!observed_.empty()) {
      std::vector<AttemptInfo> infos;
      infos.swap(observed_);
      if (observer_)
        for (const auto& i : infos) observer_(i);
    }

    if (want_seq != 0 ? has_done(want_seq) : !done_.empty()) return;
    if (active_.empty() && waiting_.empty()) return;
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return;

    Clock::time_point wake = deadline;
    for (const auto& w : waiting_) wake = std::min(wake, w->retry_at);
    if (wake <= now) continue;  // a retry is due
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1;
    const int wait_ms = static_cast<int>(std::min<long long>(wait, INT_MAX));
    const CURLMcode pc = curl_multi_poll(M(multi_), nullptr, 0, wait_ms, nullptr);
    if (pc != CURLM_OK)
      throw std::runtime_error(std::string("curl_multi_poll: ") + curl_multi_strerror(pc));
  }
}

std::vector<HttpResult> HttpClient::poll(int max_wait_ms) {
  drive(max_wait_ms, 0);
  std::vector<HttpResult> out;
  out.reserve(done_.size());
  for (auto& d : done_) out.push_back(std::move(d.result));
  done_.clear();
  return out;
}

HttpResult HttpClient::perform(HttpRequest req, const HttpOptions& opts,
                               const std::function<bool()>& should_abort) {
  const uint64_t seq = submit_internal(std::move(req), opts);
  for (;;) {
    auto it = std::find_if(done_.begin(), done_.end(), [&](const Done& d) { return d.seq == seq; });
    if (it != done_.end()) {
      HttpResult r = std::move(it->result);
      done_.erase(it);
      return r;
    }
    bool abort = false;
    try {
      abort = should_abort && should_abort();
    } catch (...) {
      abort_all();
      throw;
    }
    if (abort) {
      abort_all();
      throw HttpAborted("HTTP request aborted");
    }
    drive(100, seq);
  }
}

}  // namespace ia
