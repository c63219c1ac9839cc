#include "harness/noise.h"

#include <dirent.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>

#include "harness/process_usage.h"
#include "harness/text.h"

namespace harness {
namespace {

constexpr unsigned kKernelThread = 0x00200000;  // PF_KTHREAD in /proc/PID/stat's flags

std::vector<pid_t> Numbered(const std::string& dir) {
  std::vector<pid_t> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const pid_t n = static_cast<pid_t>(std::atoi(e->d_name));
      if (n > 0) out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

// Its name as its owner chose it (any bytes), made printable UTF-8: it goes into a results file.
std::string Comm(pid_t pid) {
  std::string name = ReadProcFile("/proc/" + std::to_string(pid) + "/comm");
  while (!name.empty() && name.back() == '\n') name.pop_back();
  return Printable(name);
}

}  // namespace

std::pair<int, double> NoiseReport::WorstCpu() const {
  std::pair<int, double> worst{-1, 0.0};
  for (const auto& [cpu, lost] : by_cpu) {
    const double taken = std::min(1.0, lost.steal + (others_judged ? lost.others : 0));
    if (taken > worst.second) worst = {cpu, taken};
  }
  return worst;
}

std::string NoiseReport::Describe() const {
  std::string split = fmt::format("steal {:.0f}%, other processes {:.0f}%{}", steal_fraction * 100,
                                  others_fraction * 100, busiest.empty() ? "" : ": " + busiest);
  if (!others_judged) split += "; only steal is judged";
  const auto [cpu, worst] = WorstCpu();
  if (cpu >= 0 && worst > fraction() && by_cpu.size() > 1) {
    return fmt::format("CPU {} lost {:.0f}% (the CPUs under test {:.0f}%: {})", cpu, worst * 100, fraction() * 100,
                       split);
  }
  return fmt::format("{:.0f}% of the CPUs under test taken ({})", fraction() * 100, split);
}

nlohmann::json NoiseReport::ToJson() const {
  const auto [cpu, worst] = WorstCpu();
  nlohmann::json j = {{"seconds", seconds}, {"steal_fraction", steal_fraction}, {"others_fraction", others_fraction},
                      {"worst_cpu", cpu},   {"worst_cpu_fraction", worst},      {"threshold", threshold},
                      {"noisy", noisy()}};
  for (const auto& [n, lost] : by_cpu)
    j["by_cpu"][std::to_string(n)] = {{"steal_fraction", lost.steal}, {"others_fraction", lost.others}};
  if (!others_judged) j["others_judged"] = false;
  if (!busiest.empty()) j["busiest"] = busiest;
  return j;
}

NoiseProbe RealNoise() {
  return [](const CpuList& cpus) -> NoiseWatch {
    auto meter = std::make_shared<NoiseMeter>(cpus);
    return [meter] { return meter->Stop(); };
  };
}

NoiseMeter::NoiseMeter(const CpuList& cpus)
    : cpus_(cpus.empty() ? AvailableCpus() : cpus),
      start_(std::chrono::steady_clock::now()),
      steal_start_(StealTicks()),
      others_start_(OtherThreads(false)) {}

std::map<int, uint64_t> NoiseMeter::StealTicks() const {
  std::istringstream in(ReadProcFile("/proc/stat"));
  std::string line;
  std::map<int, uint64_t> steal;
  while (std::getline(in, line) && line.rfind("cpu", 0) == 0) {
    if (line.size() < 4 || line[3] == ' ') continue;  // the all-CPU line
    std::istringstream fields(line.substr(3));
    int cpu = -1;
    uint64_t user, nice, system, idle, iowait, irq, softirq, stolen = 0;
    fields >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> stolen;
    if (std::binary_search(cpus_.begin(), cpus_.end(), cpu)) steal[cpu] = stolen;
  }
  return steal;
}

uint64_t NoiseMeter::StealSinceBoot() const {
  uint64_t ticks = 0;
  for (const auto& [cpu, stolen] : StealTicks()) ticks += stolen;
  return ticks;
}

std::map<pid_t, NoiseMeter::ThreadTime> NoiseMeter::OtherThreads(bool on_our_cpus_only) const {
  const std::vector<pid_t> tree = ProcessTree(getpid());
  const std::set<pid_t> ours(tree.begin(), tree.end());
  std::map<pid_t, ThreadTime> out;
  for (const pid_t pid : Numbered("/proc")) {
    if (ours.count(pid)) continue;
    const std::string tasks = "/proc/" + std::to_string(pid) + "/task/";
    for (const pid_t tid : Numbered(tasks)) {
      const std::string text = ReadProcFile(tasks + std::to_string(tid) + "/stat");
      const size_t paren = text.rfind(')');
      if (paren == std::string::npos) continue;
      std::istringstream fields(text.substr(paren + 1));
      std::vector<std::string> f((std::istream_iterator<std::string>(fields)), std::istream_iterator<std::string>());
      if (f.size() < 37) continue;
      // strtoull, not stoull: nothing read from /proc may throw out of a measurement.
      if (std::strtoull(f[6].c_str(), nullptr, 10) & kKernelThread) break;  // a kernel thread: so are all its tasks
      const int cpu = static_cast<int>(std::strtol(f[36].c_str(), nullptr, 10));
      if (on_our_cpus_only && !std::binary_search(cpus_.begin(), cpus_.end(), cpu)) continue;
      out[tid] = {pid, cpu, std::strtoull(f[11].c_str(), nullptr, 10) + std::strtoull(f[12].c_str(), nullptr, 10)};
    }
  }
  return out;
}

NoiseReport NoiseMeter::Stop() {
  NoiseReport r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double ticks_per_s = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double capacity = r.seconds * static_cast<double>(cpus_.size()) * ticks_per_s;
  if (capacity <= 0) return r;
  const double cpu_ticks = r.seconds * ticks_per_s;
  uint64_t steal = 0;
  for (const auto& [cpu, now] : StealTicks()) {
    const auto before = steal_start_.find(cpu);
    const uint64_t delta = before == steal_start_.end() ? 0 : now - std::min(now, before->second);
    steal += delta;
    r.by_cpu[cpu].steal = static_cast<double>(delta) / cpu_ticks;
  }
  r.steal_fraction = static_cast<double>(steal) / capacity;
  std::map<pid_t, uint64_t> by_process;
  uint64_t others = 0;
  for (const auto& [tid, now] : OtherThreads(true)) {
    const auto before = others_start_.find(tid);
    const uint64_t delta =
        before == others_start_.end() ? now.ticks : now.ticks - std::min(now.ticks, before->second.ticks);
    others += delta;
    by_process[now.pid] += delta;
    r.by_cpu[now.cpu].others += static_cast<double>(delta) / cpu_ticks;
  }
  r.others_fraction = static_cast<double>(others) / capacity;
  const auto top = std::max_element(by_process.begin(), by_process.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
  if (top != by_process.end() && top->second > 0)
    r.busiest = Comm(top->first) + " (pid " + std::to_string(top->first) + ")";
  return r;
}

}  // namespace harness
