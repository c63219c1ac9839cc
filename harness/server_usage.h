// The server's figures when its loads run on other hosts: `serve --usage=FILE` samples the server's
// own process tree (CPU, peak memory, threads, processes) every 100 ms into FILE, a JSON line each, and `merge
// --server-usage=FILE` charges each merged repetition with the server's CPU over its window,
// divided by the messages of all its loads together. A load on another host cannot read the
// server's /proc; the server can, and wall-clock windows join the two.
//
// The sampler is light enough to run beside the measurement: this process's CPU from one clock
// read (every thread, exact), reaped children from getrusage, its peak memory from
// /proc/self/status, and a few /proc reads per live descendant (process models), found by a scan
// of /proc when a pid was given out since the last sample (and every 10th sample). It runs in the
// server's process, so its own CPU is charged to the server: 0.3% of a CPU measured on an idle
// server here (a scan of /proc is 1.3 ms).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace harness {

struct UsageSample {
  double unix_s = 0;    // wall clock
  double cpu_ns = 0;    // the tree's CPU since it started, reaped children included
  uint64_t peak_rss_bytes = 0;  // each live process's VmHWM (its peak since it started), summed
  uint64_t threads = 0;
  uint64_t processes = 0;
};

// This process and its live descendants, now: those in `descendants`, found again by a scan of /proc
// when `rescan` (and those gone dropped from it).
UsageSample SampleOwnTree(std::vector<pid_t>& descendants, bool rescan);

// Samples this process's tree from construction to destruction (once more then) into `path`.
// Throws std::invalid_argument when `path` cannot be written.
class UsageLog {
 public:
  explicit UsageLog(const std::string& path, std::chrono::milliseconds period = std::chrono::milliseconds(100));
  ~UsageLog();
  UsageLog(const UsageLog&) = delete;
  UsageLog& operator=(const UsageLog&) = delete;

 private:
  void Sample();
  void Run();

  std::ofstream out_;
  const std::chrono::milliseconds period_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<pid_t> descendants_;
  std::string last_pid_;
  int samples_ = 0;
  std::thread thread_;
};

// The samples of a usage file, in time order. Throws std::invalid_argument for a file that is not one.
std::vector<UsageSample> ReadUsageLog(const std::string& path);

// The server's figures over [start, end] for `messages` round trips, into `metrics`
// (server_cpu_us_per_msg; server_peak_rss_bytes by the end; server_threads and server_processes,
// the most seen); the CPU per message
// in ns is returned. Negative when the samples do not cover [start, end].
double ServerFiguresOver(const std::vector<UsageSample>& samples, double start, double end, double messages,
                         nlohmann::json& metrics);

}  // namespace harness
