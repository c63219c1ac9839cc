#include "harness/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace harness {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void ExecChild(char* const* args, int stdout_fd, int stderr_fd, pid_t parent, const cpu_set_t* cpus) {
  // Only async-signal-safe calls from here to exec: the parent may have threads.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  if (cpus != nullptr && sched_setaffinity(0, sizeof *cpus, cpus) != 0) _exit(126);
  dup2(stdout_fd, STDOUT_FILENO);
  dup2(stderr_fd, STDERR_FILENO);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(args[0], args);
  _exit(127);
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const CpuList& cpus) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  stderr_fd_ = memfd_create("child-stderr", MFD_CLOEXEC);
  if (stderr_fd_ < 0) {
    close(out[0]);
    close(out[1]);
    throw std::runtime_error(std::string("memfd_create: ") + strerror(errno));
  }
  cpu_set_t set;  // built before fork: the child may only make system calls
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) ExecChild(args.data(), out[1], stderr_fd_, parent, cpus.empty() ? nullptr : &set);
  close(out[1]);
  if (pid_ < 0) {
    close(out[0]);
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  }
  stdout_fd_ = out[0];
}

ChildProcess::~ChildProcess() {
  Stop(std::chrono::milliseconds(2000));
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

std::optional<std::string> ChildProcess::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const size_t newline = stdout_buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = stdout_buffer_.substr(0, newline);
      stdout_buffer_.erase(0, newline + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || stdout_fd_ < 0) return std::nullopt;
    pollfd p{stdout_fd_, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t n = read(stdout_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    stdout_buffer_.append(buf, static_cast<size_t>(n));
  }
}

void ChildProcess::Reaped(int status) {
  if (WIFEXITED(status)) {
    exit_description_ = "exited with status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    exit_description_ = std::string("killed by signal SIG") + (name ? name : "?");
  }
  pid_ = -1;
}

bool ChildProcess::Running() {
  if (pid_ < 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) Reaped(status);
  return pid_ >= 0;
}

std::string ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (!Running()) return exit_description_;
  kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + grace;
  while (Running() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (pid_ >= 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    Reaped(status);
    exit_description_ += " (did not stop on SIGTERM within " + std::to_string(grace.count()) + " ms)";
  }
  return exit_description_;
}

std::string ChildProcess::StderrTail() const {
  if (stderr_fd_ < 0) return "";
  const off_t size = lseek(stderr_fd_, 0, SEEK_END);
  const off_t from = size > 2048 ? size - 2048 : 0;
  std::string text(static_cast<size_t>(size - from), '\0');
  const ssize_t n = pread(stderr_fd_, text.data(), text.size(), from);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  // Keep the last three lines.
  size_t cut = text.size();
  for (int lines = 0; lines < 3 && cut != std::string::npos && cut > 0; ++lines) {
    cut = text.rfind('\n', cut - 1);
  }
  if (cut != std::string::npos && cut < text.size()) text = text.substr(cut + 1);
  for (char& c : text) {
    if (c == '\n') c = '|';
  }
  return text;
}

}  // namespace harness
