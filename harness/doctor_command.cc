// `doctor`: a short look at the machine before a long run. Each line is a fact, what it does to
// the numbers, and what to do about it; nothing is changed.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "harness/command.h"
#include "harness/noise.h"
#include "harness/params.h"
#include "harness/placement.h"
#include "harness/process_usage.h"
#include "harness/results.h"
#include "harness/stats.h"

namespace harness {
namespace {

constexpr auto kWakeUpSleep = std::chrono::microseconds(50);

void Say(const std::string& what, const std::string& fact, const std::string& meaning) {
  std::cout << fmt::format("{:<10} {}\n{:<10} {}\n", what + ":", fact, "", meaning);
}

// How late a 50 us sleep ends, in us, each of them, for `seconds`.
std::vector<double> WakeUpLateness(Duration seconds) {
  std::vector<double> late_us;
  const auto end = std::chrono::steady_clock::now() + seconds;
  const timespec request{0, std::chrono::nanoseconds(kWakeUpSleep).count()};
  while (std::chrono::steady_clock::now() < end) {
    const auto before = std::chrono::steady_clock::now();
    nanosleep(&request, nullptr);
    const auto slept = std::chrono::steady_clock::now() - before;
    late_us.push_back(std::chrono::duration<double, std::micro>(slept - kWakeUpSleep).count());
  }
  return late_us;
}

// Steal while two threads, on the first and the last available CPU, hand a byte back and forth
// through pipes for `seconds`, as a server and its load generator do; and their round trips a
// second. A hypervisor steals nothing from an idle vCPU, and on a contended host little from a
// spinning one, which keeps its CPU; a vCPU that halts and is woken thousands of times a second may
// wait for its CPU each time. On the reference VM, in one minute: 0% idle, 0-1% with both CPUs
// spinning, 0.7-8% handing a byte back and forth.
std::pair<NoiseReport, double> HandOffNoise(Duration seconds) {
  const CpuList& cpus = AvailableCpus();
  int there[2], back[2];
  if (pipe2(there, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (pipe2(back, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  NoiseMeter meter(cpus);
  std::thread echo([&] {
    PinThisThread({cpus.back()});
    char c = 0;
    while (read(there[0], &c, 1) == 1 && write(back[1], &c, 1) == 1) {
    }
  });
  double per_second = 0;
  std::thread ask([&] {
    PinThisThread({cpus.front()});
    const auto start = std::chrono::steady_clock::now();
    char c = 'x';
    uint64_t trips = 0;
    while (std::chrono::steady_clock::now() - start < seconds && write(there[1], &c, 1) == 1 &&
           read(back[0], &c, 1) == 1) {
      ++trips;
    }
    per_second = trips / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  });
  ask.join();
  close(there[1]);  // the echo thread reads the end
  echo.join();
  for (int fd : {there[0], back[0], back[1]}) close(fd);
  return {meter.Stop(), per_second};
}

// What a thread spinning on a CPU lost, as gaps between its reads of the clock of at least kGap.
struct Stalls {
  int cpu = -1;
  double seconds = 0;
  double gaps_s = 0;       // the gaps' sum
  double scheduled_s = 0;  // what of the wall time the thread was not on its CPU: other tasks ran
  int gaps = 0, over_1ms = 0;
  double max_ms = 0;
};

constexpr auto kGap = std::chrono::microseconds(50);

// Spins a thread on each available CPU at once for `seconds`, as a saturated server and its load
// generator keep both busy. A gap no other task's run accounts for (the thread's own CPU clock ran
// through it) is the host's, or an interrupt's: where the hypervisor reports no steal, the noise
// guard cannot see it. On the reference VM (2026-12-04): alone on one CPU, 2 gaps over 150 us in 15
// s; with both CPUs spinning, 40 on one and 91 on the other, ending on a 100 ms grid (a host's CPU
// quota period), up to 3.8 ms.
std::vector<Stalls> SpinStalls(Duration seconds) {
  const CpuList& cpus = AvailableCpus();
  std::vector<Stalls> found(cpus.size());
  std::vector<std::thread> spinners;
  for (size_t i = 0; i < cpus.size(); ++i) {
    spinners.emplace_back([&, i] {
      PinThisThread({cpus[i]});
      Stalls& s = found[i];
      s.cpu = cpus[i];
      timespec cpu0{}, cpu1{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
      const auto start = std::chrono::steady_clock::now(), end = start + seconds;
      auto last = start;
      while (last < end) {
        const auto now = std::chrono::steady_clock::now();
        if (const auto gap = now - last; gap >= kGap) {
          const double ms = std::chrono::duration<double, std::milli>(gap).count();
          s.gaps_s += ms / 1e3;
          ++s.gaps;
          s.over_1ms += ms >= 1;
          s.max_ms = std::max(s.max_ms, ms);
        }
        last = now;
      }
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
      s.seconds = std::chrono::duration<double>(last - start).count();
      const double on_cpu = static_cast<double>(cpu1.tv_sec - cpu0.tv_sec) + (cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;
      s.scheduled_s = std::max(0.0, s.seconds - on_cpu);
    });
  }
  for (auto& t : spinners) t.join();
  return found;
}

void Cpus(const nlohmann::json& env) {
  const CpuList& cpus = AvailableCpus();
  std::string shared_core;
  for (const auto& [cpu, siblings] : env["smt_siblings"].items()) {
    if (siblings.get<std::string>() != cpu)
      shared_core = "CPU " + cpu + " shares its core with " + siblings.get<std::string>();
  }
  Say("cpus",
      fmt::format("{} available to the harness ({}); {}", cpus.size(), FormatCpuList(cpus),
                  shared_core.empty() ? "no SMT siblings among them" : shared_core),
      cpus.size() < 2 ? "one CPU: the server and the load generator share it (--cpus=split cannot split)"
      : !shared_core.empty()
          ? "siblings share a core's execution units: a server and a load generator on two siblings slow each "
            "other; give --server-cpus and --client-cpus on different cores"
          : "the default split puts the server and the load generator on disjoint CPUs");
  const std::string isolated = env.value("isolated_cpus", "");
  Say("isolated", isolated.empty() ? "none (isolcpus)" : isolated,
      isolated.empty() ? "the scheduler may run anything on the CPUs under test; the noise guard sees it and "
                         "redoes the repetition (--redo)"
                       : "give these to --server-cpus and --client-cpus: nothing else is scheduled there");
  if (env["scaling_governor"].is_string()) {
    const std::string g = env["scaling_governor"];
    Say("governor", g,
        g == "performance" ? "the clock does not ramp up and down with load: good"
                           : "the clock follows load: a light run gets a slower CPU than a heavy one; for "
                             "measuring: cpupower frequency-set -g performance");
  } else {
    Say("governor", "not visible (no cpufreq in /sys)",
        "a VM's host sets the clock; runs compared on this machine share whatever it does");
  }
}

// How an idle CPU waits for work: a guest whose haltpoll driver does not poll halts the vCPU at once,
// and the next wake-up is a VM exit and the host's to schedule.
void Idle(const nlohmann::json& env) {
  if (!env["cpuidle_driver"].is_string()) {
    Say("idle", "not visible (no cpuidle in /sys)", "the kernel's default idle loop waits for work");
    return;
  }
  const std::string driver = env["cpuidle_driver"];
  if (!env["guest_halt_poll_ns"].is_number()) {
    Say("idle", "cpuidle " + driver,
        "an idle CPU may sleep deeply: at low load each request waits for its CPU to wake (the server's CPU "
        "per message then falls as load rises)");
    return;
  }
  const long long poll_ns = env["guest_halt_poll_ns"];
  Say("idle", fmt::format("cpuidle {}, guest_halt_poll_ns {}", driver, poll_ns),
      poll_ns == 0
          ? "an idle vCPU halts at once and each wake-up is a VM exit: on the reference VM epoll at 10,000 msgs/s "
            "took 22 us of CPU a message (p99 1.1 ms) so, 12.5 us (p99 0.27 ms) with 200 us of polling; for "
            "measuring: echo 200000 > /sys/module/haltpoll/parameters/guest_halt_poll_ns"
          : fmt::format("an idle vCPU polls up to {} us before it halts: work within that wakes it without a VM exit",
                        poll_ns / 1000));
}

// Whether the hypervisor reports steal at all: none since boot on any CPU under test, after ten
// minutes up, says it does not (a host that reports it shows some within minutes of load).
bool StealReported(const NoiseMeter& meter) {
  double uptime = 0;
  std::istringstream(ReadProcFile("/proc/uptime")) >> uptime;
  return meter.StealSinceBoot() > 0 || uptime < 600;
}

void Noise(Duration seconds, double threshold, bool steal_reported) {
  NoiseMeter meter(AvailableCpus());
  // Half the time with the timer slack every thread starts with (50 us: the kernel may end a
  // sleep that much later to batch wake-ups), half with 1 ns: what the machine itself adds.
  const int slack_ns = prctl(PR_GET_TIMERSLACK);
  const std::vector<double> late_us = WakeUpLateness(seconds / 2);
  prctl(PR_SET_TIMERSLACK, 1);
  const std::vector<double> tight_us = WakeUpLateness(seconds / 2);
  prctl(PR_SET_TIMERSLACK, slack_ns);
  NoiseReport noise = meter.Stop();
  noise.threshold = threshold;
  Say("steal", fmt::format("{:.1f}% of the CPUs over {:.0f} s idle", noise.steal_fraction * 100, noise.seconds),
      noise.steal_fraction > threshold
          ? fmt::format("the hypervisor gives these CPUs to other guests: expect repetitions over the {:.0f}% "
                        "threshold to be redone, and longer runs; measure when the host is quieter",
                        threshold * 100)
      : noise.steal_fraction > 0.005 ? "some: a repetition it falls on is redone (--redo); fine between bursts"
      : steal_reported               ? "none seen: the hypervisor left these CPUs alone"
                                     : "none since boot on any CPU: this hypervisor does not report steal, and what "
                                       "it takes the noise guard cannot see (stalls, below)");
  const auto [cpu, worst] = noise.WorstCpu();
  double others_on_one = 0;  // the most other processes took of one CPU
  for (const auto& [n, lost] : noise.by_cpu) others_on_one = std::max(others_on_one, lost.others);
  Say("others",
      fmt::format("{:.1f}% of the CPUs{}{}", noise.others_fraction * 100,
                  noise.busiest.empty() ? "" : ", most by " + noise.busiest,
                  cpu >= 0 && noise.by_cpu.size() > 1
                      ? fmt::format("; with steal, CPU {} lost most: {:.1f}%", cpu, worst * 100)
                      : ""),
      std::max(noise.others_fraction, others_on_one) > threshold
          ? "other processes take enough to spoil most repetitions: stop them (a build, a browser) first"
          : "little enough: a repetition they spoil is redone");
  Say("wake-up",
      fmt::format("a {} us sleep ends {:.0f} us late (median), {:.0f} us (p99) with the default timer "
                  "slack of {} us; {:.0f} us, {:.0f} us (max {:.0f} us) with 1 ns",
                  kWakeUpSleep.count(), Median(late_us), Percentile(late_us, 99), slack_ns / 1000, Median(tight_us),
                  Percentile(tight_us, 99), Percentile(tight_us, 100)),
      Percentile(tight_us, 99) > 100
          ? "late wake-ups delay a load generator's sends and a server's replies alike: latencies below "
            "this are the machine's, not the model's; an open-loop schedule falls behind by as much"
          : "timers are punctual once the slack is off: latencies of tens of microseconds are the model's");
}

void HandOff(Duration seconds, double threshold, bool steal_reported) {
  const auto [noise, per_second] = HandOffNoise(seconds);
  const CpuList& cpus = AvailableCpus();
  Say("hand-off",
      fmt::format("{:.1f}% of the CPUs stolen over {:.0f} s while CPUs {} and {} handed a byte back and forth "
                  "({:.0f} round trips a second)",
                  noise.steal_fraction * 100, noise.seconds, cpus.front(), cpus.back(), per_second),
      noise.steal_fraction > threshold
          ? "the hypervisor makes a woken vCPU wait for its CPU: a server and its load generator will see this "
            "steal where the idle machine showed none; expect redos, and measure when the host is quieter"
      : noise.steal_fraction > 0.005 ? "some: a woken vCPU waits now and then; repetitions it spoils are redone"
      : steal_reported               ? "none seen: woken vCPUs got their CPUs at once"
                                     : "none reported, and this hypervisor reports none: what a woken vCPU waits "
                                       "for its CPU shows only as latency");
}

void SpinStallsLine(Duration seconds, bool steal_reported) {
  std::string fact;
  double unseen = 0, worst_ms = 0;
  for (const Stalls& s : SpinStalls(seconds)) {
    const double share = s.seconds > 0 ? s.gaps_s / s.seconds : 0;
    const double others = s.seconds > 0 ? std::min(share, s.scheduled_s / s.seconds) : 0;
    unseen = std::max(unseen, share - others);
    worst_ms = std::max(worst_ms, s.max_ms);
    fact += fmt::format(
        "{}CPU {} lost {:.2f}% in {} gaps of {} us or more ({} over 1 ms, max {:.1f} ms), {:.2f}% to "
        "other tasks",
        fact.empty() ? "" : "; ", s.cpu, share * 100, s.gaps, kGap.count(), s.over_1ms, s.max_ms, others * 100);
  }
  fact += fmt::format(", every CPU spinning for {:.0f} s", std::chrono::duration<double>(seconds).count());
  Say("stalls", fact,
      unseen < 0.001 && worst_ms < 1 ? "none to speak of: a spinning thread kept its CPU"
      : steal_reported
          ? "a thread kept on its CPU lost time no task accounts for: the host's (the noise guard sees it as steal) "
            "or interrupts'; a window it falls in has its p99 up by as much"
          : "a thread kept on its CPU lost time no task accounts for, and this hypervisor reports no steal: the host "
            "takes the CPUs unseen, and the noise guard cannot redo what it takes; the load generator's lateness "
            "(send_lateness_max_us) shows it on its CPU, a burst of p99 on the server's (docs/methodology.md, "
            "\"Stalls the guard cannot see\")");
}

// DAMON's monitors: kernel threads (kdamond.N) that sample memory accesses once a sampling
// interval, on whichever CPU they land, the ones under test included.
struct Kdamond {
  std::string name;
  int pid = 0;
  std::string operations;  // what it watches: paddr (physical memory), vaddr, fvaddr
  long long sample_us = 0;
  long long cpu_ns = 0;  // on a CPU so far
};

constexpr const char* kDamonAdmin = "/sys/kernel/mm/damon/admin/kdamonds";

long long CpuNs(int pid) {
  return static_cast<long long>(ReadSchedstat("/proc/" + std::to_string(pid) + "/schedstat").value_or(0));
}

// The monitors that are on, with their CPU time so far; nullopt: no DAMON in this kernel.
std::optional<std::vector<Kdamond>> RunningKdamonds() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(kDamonAdmin, ec)) return std::nullopt;
  std::vector<Kdamond> on;
  for (const auto& dir : fs::directory_iterator(kDamonAdmin, ec)) {
    const std::string d = dir.path().string();
    if (!dir.is_directory(ec) || ReadProcFile(d + "/state").rfind("on", 0) != 0) continue;
    Kdamond k{.name = "kdamond." + dir.path().filename().string(), .pid = std::atoi(ReadProcFile(d + "/pid").c_str())};
    std::istringstream(ReadProcFile(d + "/contexts/0/operations")) >> k.operations;
    k.sample_us = std::atoll(ReadProcFile(d + "/contexts/0/monitoring_attrs/intervals/sample_us").c_str());
    k.cpu_ns = CpuNs(k.pid);
    on.push_back(std::move(k));
  }
  return on;
}

// `before`: the monitors as the checks began, `seconds` ago.
void Damon(const std::optional<std::vector<Kdamond>>& before, double seconds) {
  const char* none = "no kernel thread samples memory accesses on these CPUs";
  if (!before) return Say("damon", "not in this kernel (no /sys/kernel/mm/damon/admin)", none);
  if (before->empty() || before->front().sample_us <= 0) return Say("damon", "off", none);
  const Kdamond& k = before->front();
  const double samples = std::max(1.0, seconds * 1e6 / static_cast<double>(k.sample_us));
  Say("damon",
      fmt::format("{} (pid {}) samples {} every {} ms: {:.1f} ms of a CPU each time over the last {:.0f} s{}", k.name,
                  k.pid, k.operations.empty() ? "memory" : k.operations, k.sample_us / 1000,
                  static_cast<double>(std::max(0LL, CpuNs(k.pid) - k.cpu_ns)) / 1e6 / samples, seconds,
                  before->size() > 1 ? fmt::format(" ({} monitors on)", before->size()) : ""),
      fmt::format("on any CPU, those under test too, and under the noise guard's threshold: near a knee the 100 ms "
                  "it takes the server's CPU in has its p99 up by ms (docs/methodology.md, \"DAMON\"); to measure "
                  "without it: echo off > {}/{}/state",
                  kDamonAdmin, k.name.substr(k.name.find('.') + 1)));
}

class DoctorCommand final : public Command {
 public:
  std::string name() const override { return "doctor"; }
  std::string help() const override {
    return "a short check of the machine before a long run: CPUs, idle, noise, wake-up latency, steal under "
           "hand-offs, stalls with every CPU busy, kernel threads that sample memory";
  }
  void Declare(CLI::App& app) override {
    app.add_option("--seconds", seconds_,
                   "how long to watch the idle machine, then two CPUs handing a byte back and forth, then every CPU "
                   "spinning (default 3s each)");
    app.add_option("--noise-threshold", threshold_, "the share of the CPUs a repetition may lose (default 5%)");
  }

  int Execute(const CLI::App&, const std::string&) override {
    const Duration seconds = FlagValue("--seconds", [&] {
      const Duration d = ParseDuration(seconds_, std::chrono::milliseconds(100));
      if (d > std::chrono::minutes(10)) throw std::invalid_argument("at most 10m");
      return d;
    });
    const double threshold = FlagValue("--noise-threshold", [&] { return ParseShare(threshold_); });
    const nlohmann::json env = Environment();
    Cpus(env);
    Idle(env);
    std::cout << std::flush;
    const auto watched = std::chrono::steady_clock::now();
    const auto kdamonds = RunningKdamonds();
    const bool steal_reported = StealReported(NoiseMeter(AvailableCpus()));
    Noise(seconds, threshold, steal_reported);
    std::cout << std::flush;
    HandOff(seconds, threshold, steal_reported);
    std::cout << std::flush;
    SpinStallsLine(seconds, steal_reported);
    Damon(kdamonds, std::chrono::duration<double>(std::chrono::steady_clock::now() - watched).count());
    return 0;
  }

 private:
  std::string seconds_ = "3s", threshold_ = "5%";
};

}  // namespace

HARNESS_REGISTER(CommandEntry, std::make_unique<DoctorCommand>());

}  // namespace harness
