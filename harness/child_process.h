// A supervised child process: the harness runs every server this way so that a crashing or hanging
// model cannot take the harness down, and no child outlives the harness.
//
// Start() fork+execs argv with stdout on a pipe the parent reads line by line and stderr captured to
// an anonymous file (its tail explains a failure). The child gets SIGKILL if the harness dies
// (PR_SET_PDEATHSIG). The destructor always ends and reaps the child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "harness/placement.h"

namespace harness {

class ChildProcess {
 public:
  // Throws std::runtime_error when the process cannot be started. A non-empty `cpus` pins the
  // child before exec, so every thread and process it makes inherits the placement.
  explicit ChildProcess(const std::vector<std::string>& argv, const CpuList& cpus = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // The next line of the child's stdout without its newline, or nullopt on EOF or timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);

  // True while the child has not exited. Reaps it when it has; exit_description() then says how.
  bool Running();

  // SIGTERM, then SIGKILL after grace; always reaps. Returns the exit description. Idempotent.
  std::string Stop(std::chrono::milliseconds grace);

  // "exited with status N" / "killed by signal SIGSEGV"; empty while running.
  const std::string& exit_description() const { return exit_description_; }
  // The last few lines the child wrote to stderr, joined by " | ".
  std::string StderrTail() const;

 private:
  void Reaped(int status);

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::string stdout_buffer_;
  std::string exit_description_;
};

}  // namespace harness
