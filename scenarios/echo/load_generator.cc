#include "scenarios/echo/load_generator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  int fd = -1;
  uint64_t seq = 0;        // message in flight
  size_t sent = 0;         // bytes of it sent
  size_t received = 0;     // bytes of its reply received
  Clock::time_point sent_at;
  uint64_t completed = 0;  // inside the window
  bool want_write = false;
  bool broken = false;
};

sockaddr_storage ToSockaddr(const harness::Endpoint& e, socklen_t* len) {
  sockaddr_storage addr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, e.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(e.port);
    *len = sizeof *v4;
  } else {
    inet_pton(AF_INET6, e.host.c_str(), &v6->sin6_addr);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(e.port);
    *len = sizeof *v6;
  }
  return addr;
}

// Opens every connection, at most max_in_flight handshakes at a time. Returns "" or the reason.
std::string ConnectAll(const LoadConfig& config, std::vector<Connection>& conns) {
  socklen_t len = 0;
  const sockaddr_storage addr = ToSockaddr(config.target, &len);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const auto deadline = Clock::now() + config.connect_timeout;
  size_t next = 0, done = 0, in_flight = 0;
  std::string error;
  while (done < conns.size() && error.empty()) {
    while (next < conns.size() && in_flight < static_cast<size_t>(config.max_connects_in_flight)) {
      const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        error = std::string("socket: ") + strerror(errno) + " after " + std::to_string(next) + " connections";
        break;
      }
      conns[next].fd = fd;
      SetNoDelay(fd);
      if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
        ++done;
      } else if (errno == EINPROGRESS) {
        epoll_event ev{EPOLLOUT, {.u64 = next}};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        ++in_flight;
      } else {
        error = "connect to " + config.target.ToString() + ": " + strerror(errno);
        break;
      }
      ++next;
    }
    if (!error.empty() || in_flight == 0) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || (config.stop && *config.stop)) {
      error = "connect: only " + std::to_string(done) + " of " + std::to_string(conns.size()) +
              " connections established within " + harness::FormatDuration(config.connect_timeout);
      break;
    }
    epoll_event events[256];
    const int n = epoll_wait(ep, events, 256, static_cast<int>(std::min<long>(left, 100)));
    for (int i = 0; i < n && error.empty(); ++i) {
      Connection& c = conns[events[i].data.u64];
      int err = 0;
      socklen_t errlen = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &errlen);
      epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      --in_flight;
      if (err != 0) error = "connect to " + config.target.ToString() + ": " + strerror(err);
      else ++done;
    }
  }
  close(ep);
  return error;
}

// One event loop driving conns[begin, end).
class Driver {
 public:
  Driver(const LoadConfig& config, const MessagePattern& pattern, std::vector<Connection>& conns,
         size_t begin, size_t end, Clock::time_point window_start, Clock::time_point window_end)
      : config_(config), pattern_(pattern), conns_(conns), begin_(begin), end_(end),
        window_start_(window_start), window_end_(window_end), scratch_(std::max<size_t>(kBufferSize, 65536)) {}

  void Run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = begin_; i < end_; ++i) {
      epoll_event ev{EPOLLIN, {.u64 = i}};
      epoll_ctl(ep_, EPOLL_CTL_ADD, conns_[i].fd, &ev);
      conns_[i].sent_at = Clock::now();
      Send(i);
    }
    epoll_event events[512];
    while (true) {
      const auto now = Clock::now();
      if (now >= window_end_ || (config_.stop && *config_.stop)) break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(window_end_ - now).count();
      const int n = epoll_wait(ep_, events, 512, static_cast<int>(std::clamp<long>(left + 1, 1, 100)));
      for (int i = 0; i < n; ++i) {
        const size_t index = events[i].data.u64;
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Receive(index);
        if ((events[i].events & EPOLLOUT) && !conns_[index].broken) Send(index);
      }
    }
    close(ep_);
  }

  harness::Histogram latency;
  uint64_t wrong_bytes = 0;

 private:
  void Send(size_t index) {
    Connection& c = conns_[index];
    const char* data = pattern_.Request(c.seq);
    while (c.sent < pattern_.size()) {
      const ssize_t n = send(c.fd, data + c.sent, pattern_.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        WantWrite(index, true);
        return;
      }
      Break(index);
      return;
    }
    WantWrite(index, false);
  }

  void Receive(size_t index) {
    Connection& c = conns_[index];
    while (!c.broken) {
      const size_t want = pattern_.size() - c.received;
      const ssize_t n = recv(c.fd, scratch_.data(), std::min(want, scratch_.size()), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {
        Break(index);
        return;
      }
      Check(c, static_cast<size_t>(n));
      if (c.received == pattern_.size()) Complete(index);
    }
  }

  void Check(Connection& c, size_t n) {
    const char* expected = pattern_.Reply(c.seq) + c.received;
    if (std::memcmp(scratch_.data(), expected, n) != 0) {
      for (size_t i = 0; i < n; ++i) wrong_bytes += scratch_[i] != expected[i];
    }
    c.received += n;
  }

  void Complete(size_t index) {
    Connection& c = conns_[index];
    const auto now = Clock::now();
    if (now >= window_start_ && now < window_end_) {
      latency.Record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at).count()));
      ++c.completed;
    }
    ++c.seq;
    c.sent = c.received = 0;
    c.sent_at = now;
    Send(index);
  }

  void WantWrite(size_t index, bool want) {
    Connection& c = conns_[index];
    if (c.want_write == want) return;
    c.want_write = want;
    epoll_event ev{want ? uint32_t{EPOLLIN | EPOLLOUT} : uint32_t{EPOLLIN}, {.u64 = index}};
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void Break(size_t index) {
    Connection& c = conns_[index];
    if (c.broken) return;
    c.broken = true;
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
  }

  const LoadConfig& config_;
  const MessagePattern& pattern_;
  std::vector<Connection>& conns_;
  size_t begin_, end_;
  Clock::time_point window_start_, window_end_;
  std::vector<char> scratch_;
  int ep_ = -1;
};

void CloseAll(std::vector<Connection>& conns) {
  for (auto& c : conns) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
  }
}

}  // namespace

LoadResult RunLoad(const LoadConfig& config) {
  LoadResult result;
  std::vector<Connection> conns(static_cast<size_t>(config.connections));
  if (std::string error = ConnectAll(config, conns); !error.empty()) {
    CloseAll(conns);
    result.error = error;
    return result;
  }
  const MessagePattern pattern(config.size);
  const auto window_start = Clock::now() + config.warmup;
  const auto window_end = window_start + config.duration;
  const int threads = std::clamp(config.threads, 1, config.connections);
  std::vector<std::unique_ptr<Driver>> drivers;
  std::vector<std::thread> loops;
  for (int t = 0; t < threads; ++t) {
    const size_t begin = conns.size() * t / threads, end = conns.size() * (t + 1) / threads;
    drivers.push_back(std::make_unique<Driver>(config, pattern, conns, begin, end, window_start, window_end));
    loops.emplace_back([d = drivers.back().get()] { d->Run(); });
  }
  std::this_thread::sleep_until(window_start);
  if (config.on_window_start) config.on_window_start();
  while (Clock::now() < window_end && !(config.stop && *config.stop)) {
    std::this_thread::sleep_until(std::min(window_end, Clock::now() + std::chrono::milliseconds(50)));
  }
  if (config.on_window_end) config.on_window_end();
  const auto measured_to = Clock::now();
  for (auto& l : loops) l.join();
  CloseAll(conns);

  result.interrupted = config.stop && *config.stop;
  // Round trips are counted in [window_start, window_end); an interrupted run counts until the stop.
  result.window_seconds = std::chrono::duration<double>(std::min(measured_to, window_end) - window_start).count();
  for (auto& d : drivers) {
    result.latency.Merge(d->latency);
    result.wrong_bytes += d->wrong_bytes;
  }
  for (const auto& c : conns) {
    result.per_connection.push_back(c.completed);
    result.messages += c.completed;
    result.broken_connections += c.broken;
  }
  result.ok = true;
  return result;
}

}  // namespace echo
