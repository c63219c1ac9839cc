// `threads`: a thread per connection with blocking I/O (seeds 000 and 003). The acceptor thread
// starts one thread per accepted connection; each loops recv -> reply (--reply) -> send until EOF.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "scenarios/echo/blocking_echo.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

class ThreadsServer final : public EchoServer {
 public:
  explicit ThreadsServer(const ServerConfig& config) : reply_(config.reply), work_(config.work) {}

  void Start(int listen_fd) override {
    listen_fd_ = listen_fd;
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  void Stop() override {
    stopping_ = true;
    // shutdown() wakes a thread blocked in accept() or recv() on that socket.
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    // No new connection can appear now. Wake every live one, then join every thread, live or
    // finished, outside the lock (an ending thread takes it to close its socket).
    std::list<Connection> all;
    {
      std::lock_guard lock(mu_);
      for (auto& c : connections_) shutdown(c.fd, SHUT_RDWR);
      all.splice(all.end(), connections_);
      all.splice(all.end(), finished_);
    }
    for (auto& c : all) c.thread.join();
    close(listen_fd_);
  }

 private:
  struct Connection {
    int fd;
    std::thread thread;
  };

  void AcceptLoop() {
    while (!stopping_) {
      const int fd = AcceptOrBackOff(listen_fd_, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      SetNoDelay(fd);
      JoinFinished();
      std::lock_guard lock(mu_);
      auto it = connections_.insert(connections_.end(), Connection{fd, {}});
      it->thread = std::thread([this, it] { Serve(it); });
    }
  }

  void Serve(std::list<Connection>::iterator it) {
    BlockingEcho(it->fd, reply_, work_);
    std::lock_guard lock(mu_);
    close(it->fd);
    it->fd = -1;
    if (!stopping_) finished_.splice(finished_.end(), connections_, it);
  }

  // Joins threads whose connection has ended, so a long run does not accumulate them.
  void JoinFinished() {
    std::list<Connection> done;
    {
      std::lock_guard lock(mu_);
      done.swap(finished_);
    }
    for (auto& c : done) c.thread.join();
  }

  const ReplyMode reply_;
  const bool work_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::list<Connection> connections_;  // guarded by mu_: live connections
  std::list<Connection> finished_;     // guarded by mu_: ended, thread not yet joined
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"threads", "a thread per connection, blocking I/O (seeds 000, 003)", kNoWorkers,
                              &MakeServer<ThreadsServer>, nullptr});

}  // namespace echo
