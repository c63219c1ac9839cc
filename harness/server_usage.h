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
//
// The file's first line names the server it samples ({"server": {model, address, pid, host,
// start_unix_s, cpus, period_s}}), so that merge can refuse the log of another server; every
// sample is checked when read (ReadUsageLog), so that no impossible figure reaches a result.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace harness {

struct UsageSample {
  double unix_s = 0;            // wall clock
  double cpu_ns = 0;            // the tree's CPU since it started, reaped children included
  uint64_t peak_rss_bytes = 0;  // each live process's VmHWM (its peak since it started), summed
  uint64_t threads = 0;
  uint64_t processes = 0;
};

// This process and its live descendants, now: those in `descendants`, found again by a scan of /proc
// when `rescan` (and those gone dropped from it).
UsageSample SampleOwnTree(std::vector<pid_t>& descendants, bool rescan);

// Who a usage log samples: the server the loads must have driven.
struct UsageIdentity {
  std::string model;
  std::string address;  // HOST:PORT it listens on (HOST 0.0.0.0 or ::, every address)
  int64_t pid = 0;
  std::string host;  // its host name
  double start_unix_s = 0;
  int64_t cpus = 0;     // the CPUs it may run on: its CPU can grow by at most this many seconds a second
  double period_s = 0;  // the sampling period
  nlohmann::json ToJson() const;
};

// Samples this process's tree into `path`, from Start() to destruction (once more then). The file
// is opened by the rules of every file the harness writes (output_file.h): a link, a FIFO or a
// device is refused. Throws std::invalid_argument when `path` cannot be written.
class UsageLog {
 public:
  explicit UsageLog(const std::string& path, std::chrono::milliseconds period = std::chrono::milliseconds(100));
  ~UsageLog();
  UsageLog(const UsageLog&) = delete;
  UsageLog& operator=(const UsageLog&) = delete;

  // Once the server listens: writes who it is (model and address; the rest is read here), takes the
  // first sample and starts the sampler.
  void Start(const std::string& model, const std::string& address);

 private:
  void WriteLine(const std::string& line);
  void Sample();
  void Run();

  const std::string path_;
  int fd_ = -1;
  const std::chrono::milliseconds period_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<pid_t> descendants_;
  std::string last_pid_;
  int samples_ = 0;
  std::thread thread_;
};

struct UsageFile {
  UsageIdentity server;
  std::vector<UsageSample> samples;  // in time order
};

// A usage file, checked: its identity line, then samples whose figures are finite, non-negative
// and possible (threads >= processes >= 1; CPU that grows by at most `cpus` seconds a second and
// dips by no more than a reaped child can account for; samples at most kMaxUsageGapS apart).
// Throws std::invalid_argument naming the line and what is wrong.
inline constexpr double kMaxUsageGapS = 5;
UsageFile ReadUsageLog(const std::string& path);

// The server's figures over [start, end] for `messages` round trips, into `metrics`
// (server_cpu_us_per_msg; server_peak_rss_bytes by the end; server_threads and server_processes,
// the most seen); the CPU per message in ns is returned. When the samples cannot give them (they do
// not cover [start, end], or show no CPU over it) returns a negative number and says why in `why`.
double ServerFiguresOver(const std::vector<UsageSample>& samples, double start, double end, double messages,
                         nlohmann::json& metrics, std::string* why);

}  // namespace harness
