#include "harness/server_usage.h"

#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <fstream>
#include <stdexcept>

#include "harness/output_file.h"
#include "harness/params.h"
#include "harness/process_usage.h"
#include "harness/text.h"

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

nlohmann::json UsageIdentity::ToJson() const {
  return {{"model", model}, {"address", address},  {"pid", pid}, {"host", host}, {"start_unix_s", start_unix_s},
          {"cpus", cpus},   {"period_s", period_s}};
}

UsageLog::UsageLog(const std::string& path, std::chrono::milliseconds period) : path_(path), period_(period) {
  try {
    fd_ = OpenRegularForWriting(path);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
}

void UsageLog::Start(const std::string& model, const std::string& address) {
  UsageIdentity me;
  me.model = model;
  me.address = address;
  me.pid = getpid();
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  me.host = host;
  me.start_unix_s = UnixSeconds();
  cpu_set_t cpus;
  me.cpus = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : sysconf(_SC_NPROCESSORS_ONLN);
  me.period_s = std::chrono::duration<double>(period_).count();
  WriteLine(JsonText({{"server", me.ToJson()}}));
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
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    Sample();
  }
  close(fd_);
}

// Each line whole on disk with one write: the server may be killed at any time.
void UsageLog::WriteLine(const std::string& line) {
  const std::string text = line + "\n";
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk: the log ends here, and merge says it does not cover the windows
    done += static_cast<size_t>(n);
  }
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
  WriteLine(JsonText({{"unix_s", s.unix_s},
                      {"cpu_ns", s.cpu_ns},
                      {"peak_rss_bytes", s.peak_rss_bytes},
                      {"threads", s.threads},
                      {"processes", s.processes}}));
}

void UsageLog::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, period_, [this] { return stopping_; })) Sample();
}

namespace {

// Memory no server can hold (1 PiB): a figure past it is a corrupt or forged log.
constexpr uint64_t kMostBytes = uint64_t{1} << 50;
// How far the tree's CPU may dip between samples: a child reaped meanwhile trades its exact time for
// the kernel's account of it (a few clock ticks); nothing else makes CPU time go down.
constexpr double kDipNs = 20e6, kDipPerReapedNs = 20e6;
// How far the CPU may outrun its CPUs between two samples (their clocks are read apart).
constexpr double kCpuSlack = 1.1, kCpuSlackNs = 50e6;

double FiniteNumber(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    throw std::invalid_argument(std::string(key) + " is not a finite number");
  return v.get<double>();
}

uint64_t Count(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_number_unsigned()) throw std::invalid_argument(std::string(key) + " is not a count (" + JsonText(v) + ")");
  return v.get<uint64_t>();
}

UsageIdentity IdentityFromJson(const nlohmann::json& line) {
  if (!line.is_object() || !line.contains("server") || !line["server"].is_object()) {
    throw std::invalid_argument("the first line does not name the server ({\"server\": {...}}, from serve --usage)");
  }
  const auto& j = line["server"];
  UsageIdentity id;
  for (const char* key : {"model", "address", "host"}) {
    if (!j.contains(key) || !j[key].is_string())
      throw std::invalid_argument(std::string("the server's ") + key + " is missing");
  }
  id.model = j["model"];
  id.address = j["address"];
  id.host = j["host"];
  id.pid = static_cast<int64_t>(Count(j, "pid"));
  id.cpus = static_cast<int64_t>(Count(j, "cpus"));
  id.start_unix_s = FiniteNumber(j, "start_unix_s");
  id.period_s = FiniteNumber(j, "period_s");
  ParseEndpoint(id.address, false);
  if (id.pid < 1 || id.cpus < 1 || !(id.period_s > 0) || id.period_s > kMaxUsageGapS) {
    throw std::invalid_argument("the server's pid, cpus or period_s is impossible");
  }
  return id;
}

UsageSample SampleFromJson(const nlohmann::json& j) {
  UsageSample s{FiniteNumber(j, "unix_s"), FiniteNumber(j, "cpu_ns"), Count(j, "peak_rss_bytes"), Count(j, "threads"),
                Count(j, "processes")};
  if (!(s.cpu_ns > 0)) throw std::invalid_argument("cpu_ns is not positive (a running server has used some)");
  if (s.processes < 1 || s.threads < s.processes)
    throw std::invalid_argument("threads and processes are not threads >= processes >= 1");
  if (s.peak_rss_bytes > kMostBytes) throw std::invalid_argument("peak_rss_bytes is more than any server holds");
  return s;
}

// Why `s` cannot follow `prev` in the log of `server`, or "".
std::string Impossible(const UsageSample& prev, const UsageSample& s, const UsageIdentity& server) {
  const double dt = s.unix_s - prev.unix_s;
  if (dt < 0) return "time goes backwards";
  if (dt > kMaxUsageGapS)
    return fmt::format("{:.6g} s after the previous sample (at most {} s apart)", dt, kMaxUsageGapS);
  const double grew = s.cpu_ns - prev.cpu_ns;
  const double most = dt * 1e9 * static_cast<double>(server.cpus) * kCpuSlack + kCpuSlackNs;
  if (grew > most) return fmt::format("the CPU grew {:.6g} s in {:.3g} s on {} CPUs", grew / 1e9, dt, server.cpus);
  const double reaped = prev.processes > s.processes ? static_cast<double>(prev.processes - s.processes) : 0;
  if (-grew > kDipNs + kDipPerReapedNs * reaped) {
    return fmt::format("the CPU went down {:.6g} s (more than {:.0f} reaped processes account for)", -grew / 1e9,
                       reaped);
  }
  return "";
}

}  // namespace

UsageFile ReadUsageLog(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw std::invalid_argument(path + ": not a regular file");
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot read");
  UsageFile file;
  bool named = false;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      if (!named) {
        file.server = IdentityFromJson(j);
        named = true;
        continue;
      }
      const UsageSample s = SampleFromJson(j);
      if (s.unix_s < file.server.start_unix_s) throw std::invalid_argument("a sample from before the server started");
      if (!file.samples.empty()) {
        if (const std::string why = Impossible(file.samples.back(), s, file.server); !why.empty()) {
          throw std::invalid_argument(why);
        }
      }
      file.samples.push_back(s);
    } catch (const std::exception& e) {
      throw std::invalid_argument(path + ":" + std::to_string(number) + ": not a usage sample (" + e.what() + ")");
    }
  }
  if (file.samples.size() < 2) throw std::invalid_argument(path + ": fewer than two usage samples");
  return file;
}

double ServerFiguresOver(const std::vector<UsageSample>& samples, double start, double end, double messages,
                         nlohmann::json& metrics, std::string* why) {
  if (samples.size() < 2 || start < samples.front().unix_s || end > samples.back().unix_s || !(messages > 0)) {
    *why = "does not cover this repetition's window";
    return -1;
  }
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
  const double cpu_ns = cpu_at(end) - cpu_at(start);
  if (!(cpu_ns > 0)) {  // a server that answered messages used CPU
    *why = "shows no CPU used over this repetition's window";
    return -1;
  }
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
