#include "scenarios/pipeline/child_tasks.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

namespace pipeline {
namespace {

static_assert(sizeof(ChildReply) <= PIPE_BUF, "a reply must be written atomically");

std::string Describe(int status) {
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "exited with " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

void ChildDoItem(const RunConfig& config, const Recorder& recorder, int item, int worker, int reply_fd) {
  ChildReply reply;
  reply.item = item;
  reply.worker = worker;
  reply.download_start = recorder.Now();  // steady_clock is system-wide: the parent's origin holds here
  std::this_thread::sleep_for(config.downloads[item]);
  reply.download_end = recorder.Now();
  if (!config.decoupled) {
    reply.parsed = 1;
    reply.parse_start = recorder.Now();
    reply.result = Parse(Page(config.workload, item), config.units);
    reply.parse_end = recorder.Now();
  }
  // A write this small to a pipe is whole or fails; a failure means the parent is gone.
  if (write(reply_fd, &reply, sizeof reply) != static_cast<ssize_t>(sizeof reply)) _exit(1);
}

ChildSet::ChildSet() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  reply_read_ = fds[0];
  reply_write_ = fds[1];
}

ChildSet::~ChildSet() {
  for (pid_t pid : pids_) kill(pid, SIGKILL);
  for (pid_t pid : pids_) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (reply_write_ >= 0) close(reply_write_);
  close(reply_read_);
}

pid_t ChildSet::ForkChild() {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;  // before building the message, which may allocate
    throw std::system_error(error, std::generic_category(),
                            "fork (after " + std::to_string(pids_.size()) + " children)");
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // the parent died before prctl
    close(reply_read_);
  }
  return pid;
}

void ChildSet::ExitChild() { _exit(0); }  // no atexit handlers or destructors of the parent's objects

void ChildSet::CloseWriteEnd() {
  close(reply_write_);
  reply_write_ = -1;
}

bool ChildSet::ReadReply(ChildReply& reply) {
  auto* bytes = reinterpret_cast<char*>(&reply);
  size_t got = 0;
  while (got < sizeof reply) {
    const ssize_t n = read(reply_read_, bytes + got, sizeof reply - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "read from children");
    if (n == 0) {
      if (got == 0) return false;
      throw std::runtime_error("a child's reply was cut short");
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

void ChildSet::Apply(const ChildReply& reply, const RunConfig& config, Recorder& recorder, int parent_worker,
                     std::vector<ItemTimes>& times) const {
  if (reply.item < 0 || reply.item >= static_cast<int>(times.size())) {
    throw std::runtime_error("a child replied for item " + std::to_string(reply.item));
  }
  ItemTimes& t = times[reply.item];
  t.download_worker = reply.worker;
  t.download_start = reply.download_start;
  t.download_end = reply.download_end;
  if (reply.parsed) {
    t.worker = reply.worker;
    t.parse_start = reply.parse_start;
    t.parse_end = reply.parse_end;
    t.result = reply.result;
  } else {
    ParseItem(config, recorder, reply.item, times);  // the done-callback, in the parent
    t.worker = parent_worker;
  }
}

void ChildSet::Finish(int replies, int items) {
  std::string failure;
  for (pid_t pid : pids_) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
    }
    if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) && failure.empty()) {
      failure = "child " + std::to_string(pid) + " " + Describe(status);
    }
  }
  pids_.clear();
  if (!failure.empty()) throw std::runtime_error(failure);
  if (replies != items) {
    throw std::runtime_error("children replied for " + std::to_string(replies) + " of " + std::to_string(items) +
                             " items");
  }
}

}  // namespace pipeline
