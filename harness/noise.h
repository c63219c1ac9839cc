// How much of the CPUs under test something else took while a repetition ran: the hypervisor
// (steal time, /proc/stat) and user-space threads outside the harness's own process tree that last
// ran on those CPUs (/proc/PID/task/TID/stat). Kernel threads are not counted: most of their work
// here is the loopback traffic the run itself causes (softirq). A repetition whose CPUs lost more
// than the threshold (kNoisyFraction unless --noise-threshold says otherwise) is flagged "noisy
// neighbour" in its entry, and measured again (harness/runner.h, --redo).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/placement.h"

namespace harness {

// Why 5%: docs/measuring.md, "How much noise moves a figure".
inline constexpr double kNoisyFraction = 0.05;

struct NoiseReport {
  double seconds = 0;
  double steal_fraction = 0;   // steal time over seconds x CPUs under test
  double others_fraction = 0;  // other threads' CPU time over the same
  std::string busiest;         // the other process that took most, "comm (pid N)", or ""
  double threshold = kNoisyFraction;
  double fraction() const { return steal_fraction + others_fraction; }
  bool noisy() const { return fraction() > threshold; }
  // "32% of the CPUs under test taken (steal 30%, other processes 2%: cc1plus (pid 9))"
  std::string Describe() const;
  nlohmann::json ToJson() const;
  // The report an entry's "noise" holds (a repetition's or a window's); throws nlohmann's errors.
  static NoiseReport FromJson(const nlohmann::json& j);
};

// Starts watching the CPUs under test; the function it returns stops and reports. The runner and
// the capacity search take one, so that a test can give them noise on purpose.
using NoiseWatch = std::function<NoiseReport()>;
using NoiseProbe = std::function<NoiseWatch(const CpuList& cpus)>;
NoiseProbe RealNoise();

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
