// `epoll`: a minimal hand-written reactor on one thread, the floor under every async model: what
// an event loop costs with no abstraction at all. Level-triggered; a connection whose reply could
// not be sent whole stops reading until the rest is flushed, so memory per connection stays one
// buffer. Variant `spin` (TCP) polls before sleeping, the floor under io_uring's `spin`.
// With --work, each whole request's CPU is burned on the loop (run to completion) and its wait is a
// timer on a heap, the loop serving others meanwhile; the connection reads nothing more until its
// reply is sent, so replies leave in order.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"
#include "scenarios/echo/work.h"

namespace echo {
namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  int fd;
  uint64_t id = 0;          // unique for the server's life: a timer names its connection by it
  size_t pending_from = 0;  // unsent reply bytes are buf[pending_from, pending_to)
  size_t pending_to = 0;
  uint32_t interest = EPOLLIN;  // what epoll watches it for
  char buf[kBufferSize];
  // --work: buf holds `have` bytes of requests after the reply's headroom; the one at their front
  // is `current`, `waiting` while its wait runs; its reply is made in place, and the request
  // consumed (`replied` bytes) once the reply is sent.
  size_t have = 0;
  bool waiting = false;
  WorkHeader current;
  size_t replied = 0;
};

// A request's wait, ending at `at`.
struct Timer {
  Clock::time_point at;
  int fd;
  uint64_t id;
  bool operator>(const Timer& other) const { return at > other.at; }
};

// `spin`: how long a loop with nothing to do polls (epoll_wait with no timeout) before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(20);

class EpollServer final : public EchoServer {
 public:
  explicit EpollServer(const ServerConfig& config)
      : reply_(config.reply),
        spin_(config.variant == "spin"),
        blocking_(config.variant == "blocking"),
        work_(config.work) {}

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
      if (n == 0)
        n = work_ ? WaitWithTimers(events, 512) : epoll_wait(ep_, events, 512, accepting_ ? -1 : AcceptPause());
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
        const bool ok = c.pending_to > c.pending_from ? Flush(c) && (!work_ || Advance(c))
                        : work_                       ? Receive(c)
                                                      : Echo(c);
        if (!ok) Close(it);
      }
      if (work_) FireTimers();
    }
  }

  void Close(std::unordered_map<int, std::unique_ptr<Connection>>::iterator it) {
    close(it->first);
    connections_.erase(it);
  }

  // --work: epoll_wait until an event, the next timer, or the end of an accept back-off.
  int WaitWithTimers(epoll_event* events, int size) {
    Clock::time_point until = Clock::time_point::max();
    if (!timers_.empty()) until = timers_.top().at;
    if (!accepting_) until = std::min(until, resume_accepting_);
    if (until == Clock::time_point::max()) return epoll_wait(ep_, events, size, -1);
    const int64_t ns =
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(until - Clock::now()).count());
    const timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    return epoll_pwait2(ep_, events, size, &timeout, nullptr);
  }

  // Replies to every request whose wait is over.
  void FireTimers() {
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.top().at <= now) {
      const Timer t = timers_.top();
      timers_.pop();
      auto it = connections_.find(t.fd);
      if (it == connections_.end() || it->second->id != t.id) continue;  // it closed meanwhile
      Connection& c = *it->second;
      c.waiting = false;
      if (!Reply(c) || !Advance(c)) Close(it);
    }
  }

  // --work: reads what came, then serves the whole requests it completes.
  bool Receive(Connection& c) {
    const size_t room = reply_.headroom();
    const ssize_t n = recv(c.fd, c.buf + room + c.have, sizeof c.buf - room - c.have, 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;
    c.have += static_cast<size_t>(n);
    return Advance(c);
  }

  // Serves the whole requests at the front of the buffer, in order: burns each one's CPU here, and
  // parks the connection on a timer for its wait (no reading meanwhile). False: a request that is
  // not one, or the connection failed.
  bool Advance(Connection& c) {
    while (!c.waiting && c.pending_to == c.pending_from) {
      const size_t room = reply_.headroom();
      const WorkHeader::Read read = WorkHeader::From(c.buf + room, c.have, sizeof c.buf - room, &c.current);
      if (read == WorkHeader::Read::kBad) return false;
      if (read == WorkHeader::Read::kNeedMore || c.have < c.current.length) {
        Want(c, EPOLLIN);
        return true;
      }
      BurnCpu(c.current.cpu_ns);
      if (blocking_) BlockFor(c.current.wait_ns);  // every other connection waits too
      if (!blocking_ && c.current.wait_ns > 0) {
        c.waiting = true;
        timers_.push({Clock::now() + std::chrono::nanoseconds(c.current.wait_ns), c.fd, c.id});
        Want(c, 0);  // nothing more read until this reply is out
        return true;
      }
      if (!Reply(c)) return false;
    }
    return true;
  }

  // The reply to the request at the front of the buffer, made in place and sent (or pending).
  bool Reply(Connection& c) {
    c.current.WriteReply(c.buf + reply_.headroom());
    c.pending_from = 0;
    c.pending_to = reply_.Make(c.buf, c.current.length);
    c.replied = c.current.length;
    return Flush(c);
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
      conn->id = ++connections_made_;
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
        Want(c, EPOLLOUT);
        return true;
      }
      if (n <= 0) return false;
      c.pending_from += static_cast<size_t>(n);
    }
    c.pending_from = c.pending_to = 0;
    if (c.replied > 0) {  // --work: the request is answered; what came after it moves up
      const size_t room = reply_.headroom();
      std::memmove(c.buf + room, c.buf + room + c.replied, c.have - c.replied);
      c.have -= c.replied;
      c.replied = 0;
    }
    if (c.interest == EPOLLOUT) Want(c, EPOLLIN);
    return true;
  }

  void Want(Connection& c, uint32_t events) {
    if (c.interest == events) return;
    c.interest = events;
    Watch(c.fd, events, EPOLL_CTL_MOD);
  }

  const ReplyMode reply_;
  const bool spin_;
  const bool blocking_;
  const bool work_;
  uint64_t connections_made_ = 0;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
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
                   {"spin", "epoll_wait polled for 20 us before it sleeps (io_uring's spin, with system calls)"},
                   {"blocking",
                    "a request's wait blocks the loop (--work): a blocking call inside an event loop, as a blocking "
                    "driver makes it"}}});

}  // namespace echo
