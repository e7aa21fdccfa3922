// Tiny in-process loopback HTTP/1.1 server for the HttpClient tests: one accept thread, one thread
// per connection, keep-alive, scripted answers, counts connections and concurrent requests.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace iatest {

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int connection = 0;  // 1-based id of the TCP connection it came on
  // Value of a header (case-insensitive name), "" if absent; `present` tells which.
  std::string header(const std::string& name, bool* present = nullptr) const;
};

struct Action {
  enum class Kind {
    Respond,      // answer (optionally after delay_ms, optionally trickled)
    Drop,         // close the connection without answering
    DropMidBody,  // send headers and part of the body, then close
    Hang          // never answer (until hang_ms passes, or the server stops), then close
  };
  Kind kind = Kind::Respond;
  int status = 200;
  std::string body = "ok";
  std::string content_type = "text/plain";
  std::vector<std::string> headers;  // extra "Name: value" lines
  bool chunked = false;              // Transfer-Encoding: chunked instead of Content-Length
  long long declared_length = -1;    // Content-Length to announce (-1: body size)
  int delay_ms = 0;                  // before answering
  int trickle_chunks = 0;            // > 0: send the body in this many pieces...
  int trickle_interval_ms = 0;       // ...this far apart
  int hang_ms = -1;                  // Hang: -1 = until stop()
  bool close_after = false;          // "Connection: close" and close

  static Action respond(int status, std::string body = "ok",
                        std::vector<std::string> headers = {}) {
    Action a;
    a.status = status;
    a.body = std::move(body);
    a.headers = std::move(headers);
    return a;
  }
  static Action of(Kind k) {
    Action a;
    a.kind = k;
    return a;
  }
};

class TestServer {
 public:
  TestServer();  // listens on 127.0.0.1:<ephemeral>
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  int port() const { return port_; }
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url(const std::string& path = "/") const { return "http://" + host_port() + path; }

  void enqueue(Action a);      // scripted answers, first in first out
  void set_default(Action a);  // used when the script is empty (initially: 200 "ok")

  int connections_accepted() const { return accepted_.load(); }
  int max_concurrent_requests() const { return max_in_flight_.load(); }
  int max_open_connections() const { return max_open_.load(); }
  std::vector<ReceivedRequest> requests() const;
  size_t request_count() const;

  void stop();  // idempotent; wakes hanging handlers, joins every thread

 private:
  void accept_loop();
  void serve(int fd, int conn_id);
  bool wait_or_stop(int ms);  // sleeps ms (-1: forever) unless stopping; true if stopping
  Action next_action();

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int> open_{0};
  std::atomic<int> max_open_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Action> script_;
  Action default_;
  std::vector<ReceivedRequest> requests_;
  std::set<int> client_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A port on 127.0.0.1 where nothing listens (bound then closed).
int closed_port();

}  // namespace iatest
