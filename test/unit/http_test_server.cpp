#include "http_test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace iatest {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

void bump_max(std::atomic<int>& max, int value) {
  int cur = max.load();
  while (value > cur && !max.compare_exchange_weak(cur, value)) {
  }
}

}  // namespace

std::string ReceivedRequest::header(const std::string& name, bool* present) const {
  const std::string n = lower(name);
  for (const auto& h : headers) {
    if (lower(h.first) == n) {
      if (present) *present = true;
      return h.second;
    }
  }
  if (present) *present = false;
  return "";
}

TestServer::TestServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket failed");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("bind/listen failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TestServer::~TestServer() { stop(); }

void TestServer::enqueue(Action a) {
  std::lock_guard<std::mutex> lk(mu_);
  script_.push_back(std::move(a));
}

void TestServer::set_default(Action a) {
  std::lock_guard<std::mutex> lk(mu_);
  default_ = std::move(a);
}

std::vector<ReceivedRequest> TestServer::requests() const {
  std::lock_guard<std::mutex> lk(mu_);
  return requests_;
}

size_t TestServer::request_count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return requests_.size();
}

Action TestServer::next_action() {
  std::lock_guard<std::mutex> lk(mu_);
  if (script_.empty()) return default_;
  Action a = std::move(script_.front());
  script_.pop_front();
  return a;
}

bool TestServer::wait_or_stop(int ms) {
  std::unique_lock<std::mutex> lk(mu_);
  if (ms < 0) {
    cv_.wait(lk, [this] { return stopping_.load(); });
  } else {
    cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
  }
  return stopping_.load();
}

void TestServer::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void TestServer::accept_loop() {
  int next_id = 0;
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, 20);
    if (r <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    accepted_++;
    bump_max(max_open_, ++open_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_.load()) {
        ::close(fd);
        open_--;
        break;
      }
      client_fds_.insert(fd);
    }
    const int id = ++next_id;
    threads_.emplace_back([this, fd, id] { serve(fd, id); });
  }
}

void TestServer::serve(int fd, int conn_id) {
  std::string buf;
  char chunk[8192];
  auto recv_more = [&]() -> bool {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  };
  bool keep = true;
  while (keep && !stopping_.load()) {
    // --- read one request ---
    size_t hdr_end;
    while ((hdr_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!recv_more()) {
        keep = false;
        break;
      }
    }
    if (!keep) break;
    ReceivedRequest req;
    req.connection = conn_id;
    const std::string head = buf.substr(0, hdr_end);
    buf.erase(0, hdr_end + 4);
    size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    {
      const size_t sp1 = request_line.find(' ');
      const size_t sp2 = request_line.find(' ', sp1 + 1);
      req.method = request_line.substr(0, sp1);
      req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    }
    size_t pos = (line_end == std::string::npos) ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      const std::string line = head.substr(pos, e - pos);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        req.headers.emplace_back(line.substr(0, colon), line.substr(v));
      }
      pos = e + 2;
    }
    const std::string cl = req.header("Content-Length");
    const size_t content_length = cl.empty() ? 0 : std::stoul(cl);
    if (lower(req.header("Expect")) == "100-continue") send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    while (buf.size() < content_length) {
      if (!recv_more()) {
        keep = false;
        break;
      }
    }
    if (!keep) break;
    req.body = buf.substr(0, content_length);
    buf.erase(0, content_length);
    {
      std::lock_guard<std::mutex> lk(mu_);
      requests_.push_back(req);
    }
    bump_max(max_in_flight_, ++in_flight_);

    // --- answer it ---
    const Action a = next_action();
    if (a.delay_ms > 0 && wait_or_stop(a.delay_ms)) {
      in_flight_--;
      break;
    }
    if (a.kind == Action::Kind::Drop) {
      in_flight_--;
      break;
    }
    if (a.kind == Action::Kind::Hang) {
      wait_or_stop(a.hang_ms);
      in_flight_--;
      break;
    }
    std::string out = "HTTP/1.1 " + std::to_string(a.status) + " " + reason(a.status) + "\r\n";
    if (!a.content_type.empty()) out += "Content-Type: " + a.content_type + "\r\n";
    for (const auto& h : a.headers) out += h + "\r\n";
    if (a.chunked) {
      out += "Transfer-Encoding: chunked\r\n";
    } else {
      const long long len =
          a.declared_length >= 0 ? a.declared_length : static_cast<long long>(a.body.size());
      out += "Content-Length: " + std::to_string(len) + "\r\n";
    }
    if (a.close_after) out += "Connection: close\r\n";
    out += "\r\n";
    bool ok = send_all(fd, out);
    std::string body = a.body;
    if (a.chunked) {
      // one chunk per 1000 bytes, then the terminator
      std::string enc;
      for (size_t off = 0; off < a.body.size(); off += 1000) {
        const size_t n = std::min<size_t>(1000, a.body.size() - off);
        char hex[32];
        std::snprintf(hex, sizeof hex, "%zx\r\n", n);
        enc += hex;
        enc += a.body.substr(off, n);
        enc += "\r\n";
      }
      enc += "0\r\n\r\n";
      body = enc;
    }
    if (a.kind == Action::Kind::DropMidBody) {
      if (ok) send_all(fd, body.substr(0, body.size() / 2));
      in_flight_--;
      break;
    }
    if (ok && a.trickle_chunks > 0) {
      const size_t per = std::max<size_t>(1, (body.size() + a.trickle_chunks - 1) / a.trickle_chunks);
      for (size_t off = 0; ok && off < body.size(); off += per) {
        ok = send_all(fd, body.substr(off, per));
        if (off + per < body.size() && wait_or_stop(a.trickle_interval_ms)) ok = false;
      }
    } else if (ok) {
      ok = send_all(fd, body);
    }
    in_flight_--;
    if (!ok || a.close_after) break;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    client_fds_.erase(fd);
    ::close(fd);
  }
  open_--;
}

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace iatest
