// `epoll`: a minimal hand-written reactor on one thread, the floor under every async model: what
// an event loop costs with no abstraction at all. Level-triggered; a connection whose reply could
// not be sent whole stops reading until the rest is flushed, so memory per connection stays one
// buffer. Variant `spin` (TCP) polls before sleeping, the floor under io_uring's `spin`.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <thread>
#include <unordered_map>

#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

struct Connection {
  int fd;
  size_t pending_from = 0;  // unsent reply bytes are buf[pending_from, pending_to)
  size_t pending_to = 0;
  bool waiting_for_output = false;
  char buf[kBufferSize];
};

// `spin`: how long a loop with nothing to do polls (epoll_wait with no timeout) before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(20);

class EpollServer final : public EchoServer {
 public:
  explicit EpollServer(const ServerConfig& config) : reply_(config.reply), spin_(config.variant == "spin") {}

  void Start(int listen_fd) override {
    listen_fd_ = listen_fd;
    fcntl(listen_fd_, F_SETFL, fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    Watch(listen_fd_, EPOLLIN, EPOLL_CTL_ADD);
    Watch(wake_, EPOLLIN, EPOLL_CTL_ADD);
    thread_ = std::thread([this] { Loop(); });
  }

  void Stop() override {
    const uint64_t one = 1;
    if (write(wake_, &one, sizeof one) < 0) {
      // The eventfd cannot be full after one write; nothing to do.
    }
    thread_.join();
    for (auto& [fd, conn] : connections_) close(fd);
    connections_.clear();
    close(wake_);
    close(ep_);
    close(listen_fd_);
  }

 private:
  void Watch(int fd, uint32_t events, int op) {
    epoll_event ev{events, {.fd = fd}};
    epoll_ctl(ep_, op, fd, &ev);
  }

  void Loop() {
    epoll_event events[512];
    while (true) {
      int n = spin_ ? Poll(events, 512) : 0;
      if (n == 0) n = epoll_wait(ep_, events, 512, accepting_ ? -1 : AcceptPause());
      if (!accepting_ && AcceptPause() == 0) {
        accepting_ = true;
        Watch(listen_fd_, EPOLLIN, EPOLL_CTL_MOD);
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_) return;
        if (fd == listen_fd_) {
          AcceptAll();
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;
        Connection& c = *it->second;
        // A connection with a reply pending was waiting for EPOLLOUT; otherwise it is readable.
        const bool ok = c.pending_to > c.pending_from ? Flush(c) : Echo(c);
        if (!ok) {
          close(fd);
          connections_.erase(it);
        }
      }
    }
  }

  // `spin`: asks epoll for events without sleeping until some come or kSpin has passed; 0 if none.
  int Poll(epoll_event* events, int size) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    do {
      if (const int n = epoll_wait(ep_, events, size, 0); n != 0) return n;
    } while (std::chrono::steady_clock::now() < until);
    return 0;
  }

  // Milliseconds left of an accept back-off (rounded up).
  int AcceptPause() const {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(resume_accepting_ - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, left.count()));
  }

  void AcceptAll() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && OutOfResources(errno)) {  // the listener stays readable: stop watching it a while
        accepting_ = false;
        resume_accepting_ = std::chrono::steady_clock::now() + kAcceptBackOff;
        Watch(listen_fd_, 0, EPOLL_CTL_MOD);
      }
      if (fd < 0) return;  // EAGAIN: accepted all; other errors: try again at the next event
      SetNoDelay(fd);
      // Default-initialised, not value-initialised: zero-filling the buffer would make every page
      // of it resident, which no other model pays for.
      std::unique_ptr<Connection> conn(new Connection);
      conn->fd = fd;
      connections_.emplace(fd, std::move(conn));
      Watch(fd, EPOLLIN, EPOLL_CTL_ADD);
    }
  }

  // One read and its answer per readiness event. Level-triggered epoll reports the socket again if
  // more is waiting, so reading until EAGAIN would only add a failing recv to every message.
  // False when the connection is finished.
  bool Echo(Connection& c) {
    const size_t room = reply_.headroom();
    const ssize_t n = recv(c.fd, c.buf + room, sizeof c.buf - room, 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;
    c.pending_from = 0;
    c.pending_to = reply_.Make(c.buf, static_cast<size_t>(n));
    return Flush(c);  // a partial send switches the interest to EPOLLOUT until flushed
  }

  // Sends what is pending; switches the interest to EPOLLOUT while some remains, back after.
  bool Flush(Connection& c) {
    while (c.pending_from < c.pending_to) {
      const ssize_t n = send(c.fd, c.buf + c.pending_from, c.pending_to - c.pending_from, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        if (!c.waiting_for_output) Watch(c.fd, EPOLLOUT, EPOLL_CTL_MOD);
        c.waiting_for_output = true;
        return true;
      }
      if (n <= 0) return false;
      c.pending_from += static_cast<size_t>(n);
    }
    c.pending_from = c.pending_to = 0;
    if (c.waiting_for_output) Watch(c.fd, EPOLLIN, EPOLL_CTL_MOD);
    c.waiting_for_output = false;
    return true;
  }

  const ReplyMode reply_;
  const bool spin_;
  int listen_fd_ = -1;
  int ep_ = -1;
  int wake_ = -1;
  bool accepting_ = true;  // false during an accept back-off, until resume_accepting_
  std::chrono::steady_clock::time_point resume_accepting_;
  std::thread thread_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;  // used by the loop thread only
};

// UDP: the same reactor over one datagram socket. A reply the socket cannot take now is dropped,
// as UDP allows; the client counts it lost.
class EpollUdpServer final : public EchoServer {
 public:
  explicit EpollUdpServer(const ServerConfig& config) : reply_(config.reply) {}

  void Start(int fd) override {
    fd_ = fd;
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    for (int watched : {fd_, wake_}) {
      epoll_event ev{EPOLLIN, {.fd = watched}};
      epoll_ctl(ep_, EPOLL_CTL_ADD, watched, &ev);
    }
    thread_ = std::thread([this] { Loop(); });
  }

  void Stop() override {
    const uint64_t one = 1;
    if (write(wake_, &one, sizeof one) < 0) {
      // The eventfd cannot be full after one write.
    }
    thread_.join();
    close(wake_);
    close(ep_);
    close(fd_);
  }

 private:
  void Loop() {
    char buf[ReplyMode::kDatagramBuffer];
    const size_t room = reply_.headroom();
    epoll_event events[2];
    while (true) {
      const int n = epoll_wait(ep_, events, 2, -1);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == wake_) return;
        while (true) {
          sockaddr_storage peer{};
          socklen_t len = sizeof peer;
          const ssize_t got = recvfrom(fd_, buf + room, sizeof buf - room, 0, reinterpret_cast<sockaddr*>(&peer), &len);
          if (got < 0) break;  // EAGAIN: drained
          sendto(fd_, buf, reply_.Make(buf, static_cast<size_t>(got)), 0, reinterpret_cast<sockaddr*>(&peer), len);
        }
      }
    }
  }

  const ReplyMode reply_;
  int fd_ = -1;
  int ep_ = -1;
  int wake_ = -1;
  std::thread thread_;
};

}  // namespace

HARNESS_REGISTER(ModelEntry,
                 {"epoll",
                  "a minimal hand-written epoll reactor on one thread: the floor under async models",
                  kNoWorkers,
                  &MakeServer<EpollServer>,
                  &MakeServer<EpollUdpServer>,
                  {{"wait", "epoll_wait sleeps until an event"},
                   {"spin", "epoll_wait polled for 20 us before it sleeps (io_uring's spin, with system calls)"}}});

}  // namespace echo
