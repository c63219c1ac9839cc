// `processes`: a process per connection. The acceptor forks a child for each accepted connection;
// the child serves it with blocking I/O and exits. The server's CPU, memory and threads are summed
// over its process tree by the harness.
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <set>
#include <thread>

#include "scenarios/echo/blocking_echo.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

class ProcessesServer final : public EchoServer {
 public:
  explicit ProcessesServer(const ServerConfig& config) : reply_(config.reply), work_(config.work) {}

  void Start(int listen_fd) override {
    listen_fd_ = listen_fd;
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  void Stop() override {
    stopping_ = true;
    acceptor_.join();
    for (pid_t pid : children_) kill(pid, SIGKILL);
    for (pid_t pid : children_) waitpid(pid, nullptr, 0);
    close(listen_fd_);
  }

 private:
  void AcceptLoop() {
    pollfd p{listen_fd_, POLLIN, 0};
    while (!stopping_) {
      Reap();
      // A bounded wait, so that the loop sees stopping_ and reaps exited children while idle.
      if (poll(&p, 1, 100) <= 0) continue;
      const int fd = AcceptOrBackOff(listen_fd_, SOCK_CLOEXEC);
      if (fd < 0) continue;
      SetNoDelay(fd);
      const pid_t pid = fork();
      if (pid == 0) {
        // Child: only async-signal-safe calls (the parent has threads). Dies with its parent thread.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(listen_fd_);
        BlockingEcho(fd, reply_, work_);
        _exit(0);
      }
      close(fd);
      if (pid > 0) children_.insert(pid);
    }
  }

  void Reap() {
    pid_t pid;
    while ((pid = waitpid(-1, nullptr, WNOHANG)) > 0) children_.erase(pid);
  }

  const ReplyMode reply_;
  const bool work_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::set<pid_t> children_;  // used by the acceptor thread, then by Stop() after joining it
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"processes", "a process per connection (fork on accept)", kNoWorkers,
                              &MakeServer<ProcessesServer>, nullptr});

}  // namespace echo
