#include "harness/process_usage.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace harness {
namespace {

// Reads "Key:   value [kB]" lines of a /proc status file into the fields we use.
bool ReadStatus(const std::string& path, ProcessUsage& usage, bool process_fields) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long value = 0;
    if (process_fields && std::sscanf(line.c_str(), "VmHWM: %llu kB", &value) == 1) {
      usage.peak_rss_bytes = value * 1024;
    } else if (process_fields && std::sscanf(line.c_str(), "VmRSS: %llu kB", &value) == 1) {
      usage.rss_bytes = value * 1024;
    } else if (process_fields && std::sscanf(line.c_str(), "Threads: %llu", &value) == 1) {
      usage.threads = value;
    } else if (std::sscanf(line.c_str(), "voluntary_ctxt_switches: %llu", &value) == 1) {
      usage.voluntary_switches += value;
    } else if (std::sscanf(line.c_str(), "nonvoluntary_ctxt_switches: %llu", &value) == 1) {
      usage.involuntary_switches += value;
    }
  }
  return true;
}

// utime + stime of the whole thread group, including threads that have exited.
bool ReadCpu(pid_t pid, uint64_t& cpu_ns) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;
  unsigned long long utime = 0, stime = 0;
  if (!(fields >> utime >> stime)) return false;
  static const long ticks = sysconf(_SC_CLK_TCK);
  cpu_ns = (utime + stime) * (1000000000ULL / static_cast<unsigned long long>(ticks));
  return true;
}

}  // namespace

std::optional<ProcessUsage> ReadProcessUsage(pid_t pid) {
  ProcessUsage usage;
  const std::string base = "/proc/" + std::to_string(pid);
  if (!ReadCpu(pid, usage.cpu_ns)) return std::nullopt;
  if (!ReadStatus(base + "/status", usage, true)) return std::nullopt;
  // /proc/PID/status counts the main thread's switches only: sum every thread's instead.
  usage.voluntary_switches = usage.involuntary_switches = 0;
  DIR* tasks = opendir((base + "/task").c_str());
  if (tasks == nullptr) return std::nullopt;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    ReadStatus(base + "/task/" + entry->d_name + "/status", usage, false);
  }
  closedir(tasks);
  return usage;
}

}  // namespace harness
