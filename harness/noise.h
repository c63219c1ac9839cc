// How much of the CPUs under test something else took while a repetition ran: the hypervisor
// (steal time, /proc/stat) and user-space threads outside the harness's own process tree that last
// ran on those CPUs (/proc/PID/task/TID/stat), over all of them and on the one that lost most: a
// server pinned to one CPU loses to a neighbour there what an average over two CPUs halves. Kernel
// threads are not counted: most of their work here is the loopback traffic the run itself causes
// (softirq). A repetition whose CPUs lost more than the threshold (kNoisyFraction unless
// --noise-threshold says otherwise) is flagged "noisy neighbour" in its entry, and measured again
// (harness/runner.h, --redo). `load` judges steal alone: the server it drives and the loads beside
// it are other processes by design.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/placement.h"

namespace harness {

// Why 5%: docs/methodology.md, "How much noise moves a figure".
inline constexpr double kNoisyFraction = 0.05;

struct NoiseReport {
  struct Lost {
    double steal = 0;   // of the CPU's time over `seconds`
    double others = 0;  // other threads' time that last ran there, the same way
  };
  double seconds = 0;
  double steal_fraction = 0;   // steal time over seconds x CPUs under test
  double others_fraction = 0;  // other threads' CPU time over the same
  std::map<int, Lost> by_cpu;  // each CPU under test
  bool others_judged = true;   // false: only steal makes a repetition noisy (`load`)
  std::string busiest;         // the other process that took most, "comm (pid N)", or ""
  double threshold = kNoisyFraction;
  // What is judged, over all the CPUs under test and on the one that lost most (-1: none known).
  double fraction() const { return steal_fraction + (others_judged ? others_fraction : 0); }
  std::pair<int, double> WorstCpu() const;
  // Judged on the CPU that lost most too: what one pinned side of the run lost is what moves it.
  bool noisy() const { return std::max(fraction(), WorstCpu().second) > threshold; }
  // "CPU 0 lost 12% (the CPUs under test 6%: steal 0%, other processes 6%: python3 (pid 9))", or
  // without a CPU that lost more than the average, "32% of the CPUs under test taken (steal 30%, ...)"
  std::string Describe() const;
  nlohmann::json ToJson() const;
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
  // Steal on the CPUs under test since boot, in clock ticks. 0 after a long uptime: the hypervisor
  // does not report steal (no steal clock), and nothing this meter reads sees the host take a CPU.
  uint64_t StealSinceBoot() const;

 private:
  struct ThreadTime {
    pid_t pid;
    int cpu;  // where it last ran
    uint64_t ticks;
  };
  // Threads outside the harness's tree, by tid; with on_our_cpus_only, those last run on cpus_.
  std::map<pid_t, ThreadTime> OtherThreads(bool on_our_cpus_only) const;
  std::map<int, uint64_t> StealTicks() const;  // by CPU under test

  CpuList cpus_;
  std::chrono::steady_clock::time_point start_;
  std::map<int, uint64_t> steal_start_;
  std::map<pid_t, ThreadTime> others_start_;
};

}  // namespace harness
