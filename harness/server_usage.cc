#include "harness/server_usage.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <stdexcept>

#include "harness/params.h"
#include "harness/process_usage.h"

namespace harness {

UsageSample SampleOwnTree(std::vector<pid_t>& descendants, bool rescan) {
  UsageSample s;
  s.unix_s = UnixSeconds();
  s.cpu_ns = (ProcessCpuSeconds() + ReapedChildrenCpuSeconds()) * 1e9;  // every thread, exact
  if (const auto own = ReadProcessSummary(getpid())) {
    s.threads = own->threads;
    s.peak_rss_bytes = own->peak_rss_bytes;
  }
  s.processes = 1;
  if (rescan) {
    const std::vector<pid_t> tree = ProcessTree(getpid());
    descendants.assign(tree.begin() + 1, tree.end());
  }
  std::vector<pid_t> alive;
  for (const pid_t pid : descendants) {
    const auto child = ReadProcessSummary(pid);
    if (!child) continue;  // gone: its reaper counts it now
    s.cpu_ns += static_cast<double>(child->cpu_ns + child->reaped_children_cpu_ns);
    s.threads += child->threads;
    s.peak_rss_bytes += child->peak_rss_bytes;
    ++s.processes;
    alive.push_back(pid);
  }
  descendants.swap(alive);
  return s;
}

UsageLog::UsageLog(const std::string& path, std::chrono::milliseconds period) : out_(path), period_(period) {
  if (!out_) throw std::invalid_argument("cannot write " + path);
  Sample();
  // The server waits for SIGINT and SIGTERM in its main thread: the sampler is born with them blocked.
  sigset_t stop_signals, old;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
  thread_ = std::thread([this] { Run(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

UsageLog::~UsageLog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  Sample();
}

void UsageLog::Sample() {
  // /proc/loadavg ends with the last pid the kernel gave out (to a process or a thread): while it
  // stays, no child can have been born, and the known ones are enough.
  const std::string loadavg = ReadProcFile("/proc/loadavg");
  const std::string last_pid = loadavg.substr(loadavg.find_last_of(' ') + 1);
  const bool rescan = last_pid != last_pid_ || samples_ % 10 == 0;
  last_pid_ = last_pid;
  ++samples_;
  const UsageSample s = SampleOwnTree(descendants_, rescan);
  out_ << nlohmann::json{{"unix_s", s.unix_s}, {"cpu_ns", s.cpu_ns}, {"peak_rss_bytes", s.peak_rss_bytes},
                         {"threads", s.threads}, {"processes", s.processes}}
              .dump()
       << std::endl;  // each line whole on disk: the server may be killed at any time
}

void UsageLog::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, period_, [this] { return stopping_; })) Sample();
}

std::vector<UsageSample> ReadUsageLog(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot read");
  std::vector<UsageSample> samples;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      UsageSample s{j.at("unix_s").get<double>(), j.at("cpu_ns").get<double>(),
                    j.at("peak_rss_bytes").get<uint64_t>(), j.at("threads").get<uint64_t>(),
                    j.at("processes").get<uint64_t>()};
      // The CPU may dip a little when a child is reaped (its exact time gives way to the kernel's
      // account of it in getrusage); time may not.
      if (!samples.empty() && s.unix_s < samples.back().unix_s) throw std::invalid_argument("time goes backwards");
      samples.push_back(s);
    } catch (const std::exception& e) {
      throw std::invalid_argument(path + ":" + std::to_string(number) + ": not a usage sample (" + e.what() + ")");
    }
  }
  if (samples.size() < 2) throw std::invalid_argument(path + ": fewer than two usage samples");
  return samples;
}

double ServerFiguresOver(const std::vector<UsageSample>& samples, double start, double end, double messages,
                         nlohmann::json& metrics) {
  if (samples.size() < 2 || start < samples.front().unix_s || end > samples.back().unix_s || !(messages > 0)) return -1;
  // The tree's CPU at time t, linear between the samples around it.
  auto cpu_at = [&](double t) {
    auto after = std::lower_bound(samples.begin(), samples.end(), t,
                                  [](const UsageSample& s, double at) { return s.unix_s < at; });
    if (after == samples.begin()) return after->cpu_ns;
    const auto before = after - 1;
    const double span = after->unix_s - before->unix_s;
    return span > 0 ? before->cpu_ns + (after->cpu_ns - before->cpu_ns) * (t - before->unix_s) / span : after->cpu_ns;
  };
  uint64_t threads = 0, processes = 0;
  for (const UsageSample& s : samples) {
    if (s.unix_s < start || s.unix_s > end) continue;
    threads = std::max(threads, s.threads);
    processes = std::max(processes, s.processes);
  }
  const double cpu_ns = std::max(0.0, cpu_at(end) - cpu_at(start));
  metrics["server_cpu_us_per_msg"] = cpu_ns / 1e3 / messages;
  // The peak since the server started, as the last sample before the end saw it: after the end a
  // process per connection may be gone with its peak.
  const auto after_end = std::upper_bound(samples.begin(), samples.end(), end,
                                          [](double at, const UsageSample& s) { return at < s.unix_s; });
  if (after_end != samples.begin() && (after_end - 1)->peak_rss_bytes > 0) {
    metrics["server_peak_rss_bytes"] = (after_end - 1)->peak_rss_bytes;
  }
  if (threads > 0) metrics["server_threads"] = threads;
  if (processes > 0) metrics["server_processes"] = processes;
  return cpu_ns / messages;
}

}  // namespace harness
