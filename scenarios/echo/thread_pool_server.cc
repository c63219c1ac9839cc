// `thread_pool`: connections are tasks of a bounded pool of `workers` threads (seed 001's
// ThreadPoolExecutor(3) server). The acceptor queues each connection; a free worker takes it and
// serves it until the client closes. While every worker is busy, later connections wait in the
// queue with no reply at all: the pool protects the machine by starving clients, and the harness's
// `starved_connections` and `fairness` show it.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "scenarios/echo/blocking_echo.h"
#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

class ThreadPoolServer final : public EchoServer {
 public:
  explicit ThreadPoolServer(const ServerConfig& config)
      : workers_(config.workers), reply_(config.reply), work_(config.work) {}

  void Start(int listen_fd) override {
    listen_fd_ = listen_fd;
    for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { Work(); });
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (int fd : active_) shutdown(fd, SHUT_RDWR);  // wakes workers blocked in recv
    }
    shutdown(listen_fd_, SHUT_RDWR);  // wakes the acceptor
    acceptor_.join();
    ready_.notify_all();
    for (auto& t : threads_) t.join();
    for (int fd : queue_) close(fd);  // accepted, never served
    close(listen_fd_);
  }

 private:
  void AcceptLoop() {
    while (true) {
      const int fd = AcceptOrBackOff(listen_fd_, SOCK_CLOEXEC);
      std::lock_guard lock(mu_);
      if (stopping_) {
        if (fd >= 0) close(fd);
        return;
      }
      if (fd < 0) continue;
      SetNoDelay(fd);
      queue_.push_back(fd);
      ready_.notify_one();
    }
  }

  void Work() {
    while (true) {
      int fd;
      {
        std::unique_lock lock(mu_);
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        fd = queue_.front();
        queue_.pop_front();
        active_.insert(fd);
      }
      BlockingEcho(fd, reply_, work_);
      std::lock_guard lock(mu_);
      active_.erase(fd);
      close(fd);
    }
  }

  const int workers_;
  const ReplyMode reply_;
  const bool work_;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable ready_;
  bool stopping_ = false;  // guarded by mu_
  std::deque<int> queue_;  // guarded by mu_: accepted, waiting for a worker
  std::set<int> active_;   // guarded by mu_: being served
};

// UDP (seed 004's loop, on a pool): `workers` threads each blocking in recvfrom on the one socket
// and answering what they receive. Datagrams need no connection, so no client waits for a worker.
class ThreadPoolUdpServer final : public EchoServer {
 public:
  explicit ThreadPoolUdpServer(const ServerConfig& config) : workers_(config.workers), reply_(config.reply) {}

  void Start(int fd) override {
    fd_ = fd;
    for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { Work(); });
  }

  void Stop() override {
    stopping_ = true;
    shutdown(fd_, SHUT_RDWR);  // wakes every thread blocked in recvfrom
    for (auto& t : threads_) t.join();
    close(fd_);
  }

 private:
  void Work() {
    char buf[ReplyMode::kDatagramBuffer];
    const size_t room = reply_.headroom();
    while (!stopping_) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      const ssize_t n = recvfrom(fd_, buf + room, sizeof buf - room, 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n <= 0 || stopping_) continue;
      sendto(fd_, buf, reply_.Make(buf, static_cast<size_t>(n)), 0, reinterpret_cast<sockaddr*>(&peer), len);
    }
  }

  const int workers_;
  const ReplyMode reply_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace

HARNESS_REGISTER(ModelEntry,
                 {"thread_pool", "connections are tasks of a pool of `workers` threads (seed 001); the rest wait",
                  Workers{"4", true}, &MakeServer<ThreadPoolServer>, &MakeServer<ThreadPoolUdpServer>});

}  // namespace echo
