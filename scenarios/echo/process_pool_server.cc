// `process_pool`: `workers` processes forked up front, before the server has any thread, each
// looping accept -> serve that connection to its end -> accept. Workers blocked in accept() on
// the shared listening socket are woken one at a time (no thundering herd). Like `thread_pool`,
// connections beyond `workers` wait for a free worker.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "scenarios/echo/blocking_echo.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

[[noreturn]] void WorkerLoop(int listen_fd, const ReplyMode& reply, bool work) {
  while (true) {
    const int fd = AcceptOrBackOff(listen_fd, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || OutOfResources(errno)) continue;
      _exit(0);  // the listening socket was shut down
    }
    SetNoDelay(fd);
    BlockingEcho(fd, reply, work);
    close(fd);
  }
}

class ProcessPoolServer final : public EchoServer {
 public:
  explicit ProcessPoolServer(const ServerConfig& config)
      : workers_(config.workers), reply_(config.reply), work_(config.work) {}

  void Start(int listen_fd) override {
    listen_fd_ = listen_fd;
    for (int i = 0; i < workers_; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        WorkerLoop(listen_fd, reply_, work_);
      }
      if (pid < 0) {
        const int err = errno;
        Stop();
        listen_fd_ = -1;
        throw std::runtime_error("fork: " + std::string(strerror(err)));
      }
      pids_.push_back(pid);
    }
  }

  void Stop() override {
    for (pid_t pid : pids_) kill(pid, SIGKILL);
    for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
    pids_.clear();
    if (listen_fd_ >= 0) close(listen_fd_);
  }

 private:
  const int workers_;
  const ReplyMode reply_;
  const bool work_;
  int listen_fd_ = -1;
  std::vector<pid_t> pids_;
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"process_pool", "`workers` pre-forked processes, each serving one connection at a time",
                              Workers{"4", true}, &MakeServer<ProcessPoolServer>, nullptr});

}  // namespace echo
