// One measured window of an echo run: the load generator driven against a server for the run's
// warm-up and window, the server's process tree and the load generator's CPUs sampled around the
// window, and what both sides measured turned into a repetition's figures.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "harness/placement.h"
#include "harness/process_usage.h"
#include "harness/scenario.h"
#include "scenarios/echo/load_generator.h"

namespace echo {

// The load generator over its CPUs this busy: it, not the server, may be the limit.
inline constexpr double kClientBusy = 0.9;
// The most of its CPU the load generator may have spent polling for its user/kernel split to be
// given (PutClientFigures).
inline constexpr double kPollShare = 0.05;

// The load of `run` against `target`, stopped by the harness's interrupt.
LoadConfig ConfigFor(const harness::RunSpec& run, const harness::Endpoint& target);

// The CPUs the load generator may run on: the run's placement, else every CPU available.
harness::CpuList ClientCpus(const harness::RunSpec& run);

// What one window measured, on both sides.
struct Sample {
  LoadResult load;
  std::optional<harness::TreeUsage> before, after;  // the server's
  double server_span_s = 0;  // from the start of its reading before the load to that of the one after the window
  // The server's CPU time in the window, exact (its processes' CPU clocks at the window's edges);
  // nullopt when a process left the tree or joined it meanwhile: then `before` and `after`, scaled.
  std::optional<uint64_t> server_window_cpu_ns;
  double client_cpu_s = 0;
  harness::CpuSplit client_split;  // of client_cpu_s: user space and kernel
  double client_demand_s = 0;      // run + runnable-waiting time of the load generator's threads
  double client_others_share = 0;  // of its CPUs, what others (processes, the hypervisor) took over the readings' span
  double window_start_unix = 0, window_end_unix = 0;  // wall clock: loads on other hosts can be lined up
};

// Runs the load, sampling the process tree of `sampled` (the server, when it is known) before the
// load and after the window, and its CPU clocks at the window's start and end. `tracer` (may be
// empty) is switched on last thing before the window opens and off first thing after it closes
// (tracing.h: perf counting or sampling the server).
Sample Drive(LoadConfig config, std::optional<pid_t> sampled, const harness::CpuList& client_cpus,
             const std::function<void(bool on)>& tracer = {});

// The figures of a window, or a failed repetition saying why it cannot stand.
harness::Repetition Figures(const Sample& s, const LoadConfig& config, const harness::CpuList& client_cpus);

// Why a run's figures cannot stand, or "" (see window.cc).
std::string BrokenReason(const LoadResult& load, const LoadConfig& config);

}  // namespace echo
