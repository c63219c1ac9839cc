// Linux perf beside a measured process tree, for one window: `perf stat` counting the tree's system
// calls by kind (SyscallCounter), `perf record` sampling its stacks (Profiler). Each perf starts
// attached to the tree with its events off, before the load, and is switched on at the window's
// start and off at its end through perf's control FIFOs, so what it reports is the window's alone.
// Processes and threads the tree makes after the start inherit the events (a thread or a process
// per connection is counted). perf needs root or CAP_PERFMON (kernel.perf_event_paranoid): without
// it the constructor says so.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/child_process.h"
#include "harness/placement.h"

namespace harness {

// The perf program's path; throws std::runtime_error saying how to get it when it is not on PATH.
std::string PerfPath();

// A perf process attached to `root`'s process tree, its events off until Enable(), writing to
// output() in a private folder. Throws std::runtime_error with perf's own words when perf is
// missing, refuses or does not start within 20 s. `cpus` (may be empty) is where perf itself runs:
// not the CPUs it measures.
class PerfSession {
 public:
  PerfSession(const std::string& subcommand, const std::vector<std::string>& args, pid_t root, const CpuList& cpus);
  ~PerfSession();  // stops perf if it still runs and removes its private folder
  PerfSession(const PerfSession&) = delete;
  PerfSession& operator=(const PerfSession&) = delete;

  void Enable() { Command("enable"); }
  void Disable() { Command("disable"); }
  // Ends perf (SIGINT, on which it writes its output) and waits for it. Throws when it fails.
  void Finish();
  std::string output() const { return File("output"); }

 private:
  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  void Start(const std::string& subcommand, const std::vector<std::string>& args, pid_t root, const CpuList& cpus);
  void Cleanup();
  void Command(const char* what);  // writes one control command and waits for perf's ack

  std::string dir_;
  std::unique_ptr<ChildProcess> perf_;
  int control_ = -1, ack_ = -1;
};

// The system calls counted by name: the models' I/O, readiness waits, locks, sleeps and timers.
// Every other call is counted in "other" (the total less these). Each name costs a counter per
// thread and per context switch, so the list is short.
const std::vector<std::string>& CountedSyscalls();

struct SyscallCounts {
  uint64_t total = 0;
  std::map<std::string, uint64_t> by_kind;  // the counted names that occurred, and "other"
};

// `perf stat -x,` output (count,unit,event,...) into counts; throws std::runtime_error when an
// event was not counted.
SyscallCounts ParseSyscallCounts(const std::string& csv);

// Counts the system calls `root`'s tree makes between Enable() and Disable().
class SyscallCounter {
 public:
  SyscallCounter(pid_t root, const CpuList& cpus);
  void Enable() { session_->Enable(); }
  void Disable() { session_->Disable(); }
  SyscallCounts Finish();  // once, after Disable()

 private:
  std::unique_ptr<PerfSession> session_;
};

// A sampled profile: call stacks folded (root first, frames joined by ';') with their sample counts,
// the largest first, and the functions most often on the stack.
struct Profile {
  struct Function {
    std::string name;    // "[k] name" for the kernel's, "[.] name" for user space's
    double total = 0;    // share of the samples with it on the stack
    double self = 0;     // share of the samples in it
  };
  uint64_t samples = 0;
  int frequency_hz = 0;
  std::vector<std::pair<std::string, uint64_t>> stacks;
  std::vector<Function> top;
  nlohmann::json ToJson() const;
};

// `perf report -g folded` lines ("COUNT frame;frame;...") into stacks (other lines ignored),
// repeats summed, the largest first. Stacks under `min_share` of the samples each are cut to their
// first kCutDepth frames and summed there: every sample still counts in its outer frames.
inline constexpr size_t kCutDepth = 6;
std::vector<std::pair<std::string, uint64_t>> ParseFoldedStacks(const std::string& text, double min_share);

// `perf report --children --sort sym -g none` lines ("  45.00%  1.00%  [k] symbol") into
// functions, the first `limit`.
std::vector<Profile::Function> ParseTopFunctions(const std::string& text, size_t limit);

// Samples `root`'s tree's stacks (software clock, frame pointers) between Enable() and Disable().
class Profiler {
 public:
  static constexpr int kFrequencyHz = 997;  // prime: not in step with the models' own periodic work
  Profiler(pid_t root, const CpuList& cpus);
  void Enable() { session_->Enable(); }
  void Disable() { session_->Disable(); }
  Profile Finish();  // once, after Disable()

 private:
  std::unique_ptr<PerfSession> session_;
  CpuList cpus_;
};

}  // namespace harness
