// How much of the CPUs under test something else took while a repetition ran: the hypervisor
// (steal time, /proc/stat) and user-space threads outside the harness's own process tree that last
// ran on those CPUs (/proc/PID/task/TID/stat). Kernel threads are not counted: most of their work
// here is the loopback traffic the run itself causes (softirq). A repetition whose CPUs lost more
// than kNoisyFraction is flagged "noisy neighbour" in its entry and in the summary.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/placement.h"

namespace harness {

inline constexpr double kNoisyFraction = 0.05;

struct NoiseReport {
  double seconds = 0;
  double steal_fraction = 0;   // steal time over seconds x CPUs under test
  double others_fraction = 0;  // other threads' CPU time over the same
  std::string busiest;         // the other process that took most, "comm (pid N)", or ""
  bool noisy() const { return steal_fraction + others_fraction > kNoisyFraction; }
  nlohmann::json ToJson() const;
};

class NoiseMeter {
 public:
  // Starts watching `cpus` (empty: every available CPU).
  explicit NoiseMeter(const CpuList& cpus);
  NoiseReport Stop();

 private:
  struct ThreadTime {
    pid_t pid;
    uint64_t ticks;
  };
  // Threads outside the harness's tree, by tid; with on_our_cpus_only, those last run on cpus_.
  std::map<pid_t, ThreadTime> OtherThreads(bool on_our_cpus_only) const;
  uint64_t StealTicks() const;

  CpuList cpus_;
  std::chrono::steady_clock::time_point start_;
  uint64_t steal_start_ = 0;
  std::map<pid_t, ThreadTime> others_start_;
};

}  // namespace harness
