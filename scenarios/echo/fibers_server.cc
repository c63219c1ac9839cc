// `fibers`: Boost.Fiber, a fiber per connection written as blocking code (the seeds' gevent):
// recv, make the reply (--reply), send. Sockets are non-blocking underneath: a fiber whose call would block parks
// itself, and the thread's scheduler, a round robin whose idle wait is epoll_wait, resumes it when
// epoll reports its socket. `workers` threads each run such a scheduler and accept from the shared
// listening socket (EPOLLEXCLUSIVE wakes one of them per connection). With --work, a fiber reads
// whole requests, burns each one's CPU and waits in this_fiber::sleep_for (parked: the thread's
// other fibers run meanwhile).
//
// Why not Boost.Fiber's Asio example integration: in Boost 1.74 it does not compile and it
// supports one io_context per thread only (see shared notes). Why epoll_wait in suspend_until and
// not a polling fiber: an idle thread must sleep, or its spinning is charged to the model.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/fiber/all.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"
#include "scenarios/echo/work.h"

namespace echo {
namespace {

namespace fibers = boost::fibers;

// A socket's parked fiber, if any. epoll's data.ptr points here.
struct Waiter {
  fibers::context* parked = nullptr;
};

// Parks the calling fiber until the scheduler sees an event for its Waiter.
void Park(Waiter& w) {
  w.parked = fibers::context::active();
  w.parked->suspend();
}

class EpollScheduler final : public fibers::algo::algorithm {
 public:
  // on_wake: the Waiter resumed when the thread's eventfd fires (its acceptor, to see a stop).
  EpollScheduler(int epoll_fd, int wake_fd, Waiter* on_wake) : ep_(epoll_fd), wake_(wake_fd), on_wake_(on_wake) {}

  void awakened(fibers::context* ctx) noexcept override { ctx->ready_link(ready_); }

  fibers::context* pick_next() noexcept override {
    if (ready_.empty()) return nullptr;
    fibers::context* ctx = &ready_.front();
    ready_.pop_front();
    return ctx;
  }

  bool has_ready_fibers() const noexcept override { return !ready_.empty(); }

  // No fiber is ready: sleep in epoll until a socket event, a wake-up, or the next timer (to the
  // nanosecond: a sleeping fiber's 1 ms wait must not become 2).
  void suspend_until(std::chrono::steady_clock::time_point const& until) noexcept override {
    epoll_event events[256];
    int n = 0;
    if (until == std::chrono::steady_clock::time_point::max()) {
      n = epoll_wait(ep_, events, 256, -1);
    } else {
      const int64_t ns = std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(until - std::chrono::steady_clock::now()).count());
      const timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      n = epoll_pwait2(ep_, events, 256, &timeout, nullptr);
    }
    for (int i = 0; i < n; ++i) {
      auto* w = static_cast<Waiter*>(events[i].data.ptr);
      if (w == nullptr) {
        uint64_t drained;
        if (read(wake_, &drained, sizeof drained) < 0) {
          // EAGAIN: another event already drained it.
        }
        w = on_wake_;
      }
      if (w->parked != nullptr) {
        fibers::context* ctx = w->parked;
        w->parked = nullptr;
        fibers::context::active()->schedule(ctx);
      }
    }
  }

  // A fiber of ours was made ready from another thread: end the epoll wait.
  void notify() noexcept override {
    const uint64_t one = 1;
    if (write(wake_, &one, sizeof one) < 0) {
      // Cannot fail for a non-saturated eventfd.
    }
  }

 private:
  const int ep_;
  const int wake_;
  Waiter* const on_wake_;
  fibers::scheduler::ready_queue_type ready_;
};

// What recv() returns, the calling fiber parked while the socket has nothing: 0 at the end of the
// stream, negative on an error.
ssize_t Receive(int fd, char* data, size_t n, Waiter& w) {
  while (true) {
    const ssize_t got = recv(fd, data, n, 0);
    if (got >= 0 || errno != EAGAIN) return got;
    Park(w);
  }
}

// Sends all of `n` bytes, parked while the socket is full. False when the connection failed.
bool SendAll(int fd, const char* data, size_t n, Waiter& w) {
  size_t sent = 0;
  while (sent < n) {
    const ssize_t m = send(fd, data + sent, n - sent, MSG_NOSIGNAL);
    if (m < 0 && errno == EAGAIN) {
      Park(w);
      continue;
    }
    if (m <= 0) return false;
    sent += static_cast<size_t>(m);
  }
  return true;
}

// recv, make the reply (--reply), send, until the peer closes or an error.
void ServeEcho(int fd, const ReplyMode& reply, Waiter& w) {
  char buf[kBufferSize];
  const size_t room = reply.headroom();
  while (true) {
    const ssize_t got = Receive(fd, buf + room, sizeof buf - room, w);
    if (got <= 0 || !SendAll(fd, buf, reply.Make(buf, static_cast<size_t>(got)), w)) return;
  }
}

// --work: whole requests after the reply's headroom, each answered in place, then consumed.
void ServeWork(int fd, const ReplyMode& reply, bool blocking, Waiter& w) {
  char buf[kBufferSize];
  const size_t room = reply.headroom(), capacity = sizeof buf - room;
  char* const in = buf + room;
  size_t have = 0;
  while (true) {
    WorkHeader h;
    const WorkHeader::Read read = WorkHeader::From(in, have, capacity, &h);
    if (read == WorkHeader::Read::kBad) return;  // not --work's protocol
    if (read == WorkHeader::Read::kNeedMore || have < h.length) {
      const ssize_t got = Receive(fd, in + have, capacity - have, w);
      if (got <= 0) return;
      have += static_cast<size_t>(got);
      continue;
    }
    BurnCpu(h.cpu_ns);
    if (blocking) {
      BlockFor(h.wait_ns);  // the thread's other fibers wait too
    } else if (h.wait_ns > 0) {
      boost::this_fiber::sleep_for(std::chrono::nanoseconds(h.wait_ns));
    }
    h.WriteReply(in);
    if (!SendAll(fd, buf, reply.Make(buf, h.length), w)) return;
    std::memmove(in, in + h.length, have - h.length);
    have -= h.length;
  }
}

void ServeConnection(int ep, int fd, const ReplyMode& reply, bool work, bool blocking) {
  Waiter w;
  epoll_event ev{EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = &w}};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  work ? ServeWork(fd, reply, blocking, w) : ServeEcho(fd, reply, w);
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
}

class FiberThread {
 public:
  FiberThread(const ReplyMode& reply, bool work, bool blocking)
      : reply_(reply),
        work_(work),
        blocking_(blocking),
        ep_(epoll_create1(EPOLL_CLOEXEC)),
        wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~FiberThread() {
    close(ep_);
    close(wake_);
  }

  // TCP: accepts from listen_fd and serves each connection in a fiber of its own.
  void Start(int listen_fd) {
    thread_ = std::thread([this, listen_fd] { Run(listen_fd); });
  }
  // UDP: one fiber answering datagrams on the shared socket, parked while there is none.
  void StartUdp(int fd) {
    thread_ = std::thread([this, fd] { RunUdp(fd); });
  }

  // Ends every connection and the acceptor; then joins the thread.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    const uint64_t one = 1;
    if (write(wake_, &one, sizeof one) < 0) {
      // Cannot fail for a non-saturated eventfd.
    }
    thread_.join();
  }

 private:
  void Run(int listen_fd) {
    fibers::use_scheduling_algorithm<EpollScheduler>(ep_, wake_, &accept_waiter_);
    epoll_event wake{EPOLLIN, {.ptr = nullptr}};
    epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &wake);
    // Edge-triggered: the acceptor accepts until EAGAIN, and a listener it leaves readable (out of
    // descriptors) must not wake the thread again and again during its back-off.
    epoll_event listen{EPOLLIN | EPOLLEXCLUSIVE | EPOLLET, {.ptr = &accept_waiter_}};
    epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd, &listen);

    // Connection fibers are detached but never outlive the thread: it waits for `live` to reach 0.
    int live = 0;
    fibers::mutex mu;
    fibers::condition_variable all_done;
    while (true) {
      const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      {
        std::lock_guard lock(mu_);
        if (stopping_) {
          if (fd >= 0) close(fd);
          break;
        }
        if (fd >= 0) fds_.insert(fd);
      }
      if (fd < 0) {
        if (errno == EAGAIN) Park(accept_waiter_);
        if (OutOfResources(errno)) boost::this_fiber::sleep_for(kAcceptBackOff);
        continue;
      }
      SetNoDelay(fd);
      ++live;
      fibers::fiber([&, fd] {
        ServeConnection(ep_, fd, reply_, work_, blocking_);
        {
          std::lock_guard lock(mu_);
          fds_.erase(fd);
        }
        close(fd);
        std::lock_guard fiber_lock(mu);
        if (--live == 0) all_done.notify_one();
      }).detach();
    }
    epoll_ctl(ep_, EPOLL_CTL_DEL, listen_fd, nullptr);
    std::unique_lock lock(mu);
    all_done.wait(lock, [&] { return live == 0; });
  }

  // The thread's main fiber serves the socket: a reply the socket cannot take now is dropped, as
  // UDP allows (the client counts it lost).
  void RunUdp(int fd) {
    fibers::use_scheduling_algorithm<EpollScheduler>(ep_, wake_, &accept_waiter_);
    epoll_event wake{EPOLLIN, {.ptr = nullptr}};
    epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &wake);
    epoll_event readable{EPOLLIN | EPOLLEXCLUSIVE | EPOLLET, {.ptr = &accept_waiter_}};
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &readable);
    char buf[ReplyMode::kDatagramBuffer];
    const size_t room = reply_.headroom();
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
      }
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      const ssize_t n = recvfrom(fd, buf + room, sizeof buf - room, 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n < 0) {
        if (errno == EAGAIN) Park(accept_waiter_);
        continue;
      }
      sendto(fd, buf, reply_.Make(buf, static_cast<size_t>(n)), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peer), len);
    }
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
  }

  const ReplyMode& reply_;  // the server's
  const bool work_;
  const bool blocking_;
  const int ep_;
  const int wake_;
  Waiter accept_waiter_;  // the acceptor (TCP) or the serving fiber (UDP)
  std::thread thread_;
  std::mutex mu_;
  bool stopping_ = false;  // guarded by mu_
  std::set<int> fds_;      // guarded by mu_: this thread's open connections
};

// `udp`: the socket is a datagram socket, served by a fiber per thread (EPOLLEXCLUSIVE wakes one).
class FibersServer final : public EchoServer {
 public:
  FibersServer(const ServerConfig& config, bool udp) : reply_(config.reply), udp_(udp) {
    for (int i = 0; i < config.workers; ++i)
      threads_.push_back(std::make_unique<FiberThread>(reply_, config.work, config.variant == "blocking"));
  }

  void Start(int listen_fd) override {
    listen_fd_ = listen_fd;
    // A fiber must never block its thread in accept() or recvfrom(): it parks on EAGAIN instead.
    fcntl(listen_fd_, F_SETFL, fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
    for (auto& t : threads_) udp_ ? t->StartUdp(listen_fd) : t->Start(listen_fd);
  }

  void Stop() override {
    for (auto& t : threads_) t->Stop();
    threads_.clear();
    close(listen_fd_);
  }

 private:
  const ReplyMode reply_;
  const bool udp_;
  int listen_fd_ = -1;
  std::vector<std::unique_ptr<FiberThread>> threads_;
};

std::unique_ptr<EchoServer> MakeTcp(const ServerConfig& config) {
  return std::make_unique<FibersServer>(config, false);
}
std::unique_ptr<EchoServer> MakeUdp(const ServerConfig& config) { return std::make_unique<FibersServer>(config, true); }

}  // namespace

HARNESS_REGISTER(ModelEntry,
                 {"fibers",
                  "Boost.Fiber, a fiber per connection in blocking style; epoll-driven scheduler per thread",
                  Workers{"1", false},
                  &MakeTcp,
                  &MakeUdp,
                  {{"sleep", "a request's wait (--work) parks its fiber in this_fiber::sleep_for"},
                   {"blocking",
                    "a request's wait blocks the loop (--work): a blocking call inside an event loop, as a blocking "
                    "driver makes it"}}});

}  // namespace echo
