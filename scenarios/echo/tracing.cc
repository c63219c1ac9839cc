#include "scenarios/echo/tracing.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "scenarios/echo/window.h"

namespace echo {
namespace {

constexpr const char* kFlags[] = {"syscalls", "flamegraph"};

}  // namespace

void PlanTracing(const harness::Options& options, harness::RunSpec& run) {
  for (const char* flag : kFlags) {
    if (!options.params.count(flag)) continue;
    const std::string name = std::string("--") + flag;
    if (!options.params.at(flag).empty()) throw std::invalid_argument(name + ": takes no value");
    if (options.target && !options.server_pid) {
      throw std::invalid_argument(name + ": perf attaches to the server: give --server-pid (a server on this host)");
    }
    if (run.params.contains("capacity")) {
      throw std::invalid_argument(name + ": not with --capacity (trace a plain run at the rate it found)");
    }
    try {
      harness::PerfPath();
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(name + ": " + e.what());
    }
    run.plan_data[flag] = true;
    run.consumed.push_back(flag);
  }
}

bool CountsSyscalls(const harness::RunSpec& run) { return run.plan_data.value("syscalls", false); }

bool Profiles(const harness::RunSpec& run, int repetition_index) {
  return repetition_index == 0 && run.plan_data.value("flamegraph", false);
}

void PutSyscalls(const harness::SyscallCounts& counts, harness::Repetition& rep) {
  const double msgs = static_cast<double>(rep.iterations);
  if (msgs <= 0) return;
  std::vector<std::pair<std::string, uint64_t>> kinds(counts.by_kind.begin(), counts.by_kind.end());
  std::stable_sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  nlohmann::json per_msg = nlohmann::json::array();
  for (const auto& [kind, n] : kinds) per_msg.push_back({kind, static_cast<double>(n) / msgs});
  rep.metrics["syscalls_per_msg"] = static_cast<double>(counts.total) / msgs;
  rep.detail["syscalls"] = {{"total", counts.total},
                            {"counter", "perf stat -e raw_syscalls:sys_enter and syscalls:sys_enter_NAME"},
                            {"per_msg", std::move(per_msg)}};
}

nlohmann::json ProfileWindow(LoadConfig config, pid_t server, const harness::CpuList& perf_cpus) {
  harness::Profiler profiler(server, perf_cpus);
  const Sample s = Drive(std::move(config), server, perf_cpus, [&](bool on) { on ? profiler.Enable() : profiler.Disable(); });
  if (!s.load.ok) throw std::runtime_error("the profiled window failed: " + s.load.error);
  nlohmann::json profile = profiler.Finish().ToJson();
  profile["msgs_per_second"] = static_cast<double>(s.load.messages) / s.load.window_seconds;
  return profile;
}

}  // namespace echo
