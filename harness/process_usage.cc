#include "harness/process_usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace harness {
namespace {

// Reads "Key:   value [kB]" lines of a /proc status file into the fields we use.
bool ReadStatus(const std::string& path, ProcessUsage& usage, bool process_fields) {
  const std::string text = ReadProcFile(path);
  if (text.empty()) return false;
  std::istringstream in(text);
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

// The parent pid field of /proc/PID/stat, or -1.
pid_t ParentOf(pid_t pid) {
  const std::string text = ReadProcFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  char state = 0;
  int ppid = -1;
  if (std::sscanf(text.c_str() + close + 2, "%c %d", &state, &ppid) != 2) return -1;
  return ppid;
}

struct StatCpu {
  uint64_t own_ns = 0;       // utime + stime
  uint64_t children_ns = 0;  // cutime + cstime
  uint64_t user_ns = 0;      // utime + cutime
  uint64_t kernel_ns = 0;    // stime + cstime
};

// CPU times of a /proc stat file (a process's or a thread's), in clock ticks converted to ns.
bool ReadStatCpu(const std::string& path, StatCpu& cpu) {
  const std::string text = ReadProcFile(path);
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;
  unsigned long long utime = 0, stime = 0, cutime = 0, cstime = 0;
  if (!(fields >> utime >> stime >> cutime >> cstime)) return false;
  static const unsigned long long ns_per_tick = 1000000000ULL / static_cast<unsigned long long>(sysconf(_SC_CLK_TCK));
  cpu.own_ns = (utime + stime) * ns_per_tick;
  cpu.children_ns = (cutime + cstime) * ns_per_tick;
  cpu.user_ns = (utime + cutime) * ns_per_tick;
  cpu.kernel_ns = (stime + cstime) * ns_per_tick;
  return true;
}

double Seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; }

}  // namespace

std::optional<uint64_t> ReadSchedstat(const std::string& path) {
  unsigned long long runtime = 0;
  if (std::sscanf(ReadProcFile(path).c_str(), "%llu", &runtime) != 1) return std::nullopt;
  return runtime;
}

std::string ReadProcFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string text;
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) text.clear();  // ESRCH: gone while we read
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

std::optional<ProcessUsage> ReadProcessUsage(pid_t pid) {
  ProcessUsage usage;
  const std::string base = "/proc/" + std::to_string(pid);
  StatCpu process;
  if (!ReadStatCpu(base + "/stat", process)) return std::nullopt;
  usage.reaped_children_cpu_ns = process.children_ns;
  usage.user_ns = process.user_ns;
  usage.kernel_ns = process.kernel_ns;
  if (!ReadStatus(base + "/status", usage, true)) return std::nullopt;
  // /proc/PID/status counts the main thread's switches only: sum every thread's instead. Ticks
  // (10 ms) are too coarse for a process whose threads each run a few ms per second: live threads
  // are counted exactly from schedstat, and only threads that have exited from the ticks: the
  // process's (its whole CPU, truncated to a tick once) less its live threads' exact time. Not
  // less the live threads' own ticks: each of those is truncated, and a thread that has run
  // under a tick in all shows none, which counted a thread-per-connection server's CPU twice.
  usage.voluntary_switches = usage.involuntary_switches = 0;
  uint64_t live_exact_ns = 0;
  bool exact = true;
  DIR* tasks = opendir((base + "/task").c_str());
  if (tasks == nullptr) return std::nullopt;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    const std::string task = base + "/task/" + entry->d_name;
    ReadStatus(task + "/status", usage, false);
    const auto runtime = ReadSchedstat(task + "/schedstat");
    if (!runtime) {
      exact = false;
      continue;
    }
    live_exact_ns += *runtime;
  }
  closedir(tasks);
  const uint64_t exited_ns = process.own_ns > live_exact_ns ? process.own_ns - live_exact_ns : 0;
  usage.cpu_ns = exact ? live_exact_ns + exited_ns : process.own_ns;
  return usage;
}

std::optional<ProcessUsage> ReadProcessSummary(pid_t pid) {
  ProcessUsage usage;
  const std::string base = "/proc/" + std::to_string(pid);
  StatCpu process;
  if (!ReadStatCpu(base + "/stat", process) || !ReadStatus(base + "/status", usage, true)) return std::nullopt;
  usage.cpu_ns = process.own_ns;
  usage.reaped_children_cpu_ns = process.children_ns;
  usage.user_ns = process.user_ns;
  usage.kernel_ns = process.kernel_ns;
  if (usage.threads == 1) {  // the thread group leader's schedstat is then the whole process's
    if (const auto runtime = ReadSchedstat(base + "/schedstat")) usage.cpu_ns = *runtime;
  }
  return usage;
}

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

CpuSplit ProcessCpuSplit() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return {Seconds(usage.ru_utime), Seconds(usage.ru_stime)};
}

double ProcessCpuDemandSeconds() {
  double total = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::istringstream in(ReadProcFile(std::string("/proc/self/task/") + entry->d_name + "/schedstat"));
    double run_ns = 0, wait_ns = 0;
    if (in >> run_ns >> wait_ns) total += (run_ns + wait_ns) * 1e-9;
  }
  closedir(dir);
  return total;
}

double ReapedChildrenCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  return Seconds(usage.ru_utime) + Seconds(usage.ru_stime);
}

std::vector<pid_t> ChildrenOfThread(pid_t tid) {
  std::istringstream in(ReadProcFile("/proc/self/task/" + std::to_string(tid) + "/children"));
  std::vector<pid_t> pids;
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

std::string SelfExecutable() {
  char exe[4096] = {};
  return readlink("/proc/self/exe", exe, sizeof exe - 1) > 0 ? exe : "";
}

std::optional<uint64_t> TreeCpuNs(const std::vector<pid_t>& tree) {
  uint64_t total = 0;
  for (const pid_t pid : tree) {
    clockid_t clock{};
    timespec ts{};
    if (clock_getcpuclockid(pid, &clock) != 0 || clock_gettime(clock, &ts) != 0) return std::nullopt;
    total += static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
  }
  return total;
}

std::vector<pid_t> ProcessTree(pid_t root) {
  // Every process's parent, then a walk down from root. /proc lists thread-group leaders only.
  std::map<pid_t, std::vector<pid_t>> children;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* entry = readdir(proc)) {
      const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
      if (pid > 0 && pid != root) children[ParentOf(pid)].push_back(pid);
    }
    closedir(proc);
  }
  // The scan is not atomic: while processes come and go, a reused pid can make the parent links a
  // cycle, so each pid is taken once.
  std::vector<pid_t> tree = {root};
  std::set<pid_t> seen = {root};
  for (size_t i = 0; i < tree.size(); ++i) {
    for (const pid_t child : children[tree[i]]) {
      if (seen.insert(child).second) tree.push_back(child);
    }
  }
  return tree;
}

std::optional<TreeUsage> ReadProcessTreeUsage(pid_t root) { return ReadProcessTreeUsage(ProcessTree(root)); }

std::optional<TreeUsage> ReadProcessTreeUsage(const std::vector<pid_t>& pids) {
  const auto root_usage = pids.empty() ? std::nullopt : ReadProcessUsage(pids[0]);
  if (!root_usage) return std::nullopt;
  // A process's CPU counts while it lives, then in its reaper's cutime: the sum stays continuous.
  TreeUsage tree{*root_usage, 1};
  tree.total.cpu_ns += root_usage->reaped_children_cpu_ns;
  for (size_t i = 1; i < pids.size(); ++i) {
    if (const auto u = ReadProcessUsage(pids[i])) {
      tree.total.cpu_ns += u->cpu_ns + u->reaped_children_cpu_ns;
      tree.total.user_ns += u->user_ns;
      tree.total.kernel_ns += u->kernel_ns;
      tree.total.peak_rss_bytes += u->peak_rss_bytes;
      tree.total.rss_bytes += u->rss_bytes;
      tree.total.threads += u->threads;
      tree.total.voluntary_switches += u->voluntary_switches;
      tree.total.involuntary_switches += u->involuntary_switches;
      ++tree.processes;
    }
  }
  return tree;
}

std::string CheckServesPort(pid_t root, uint16_t port, bool udp) {
  if (access(("/proc/" + std::to_string(root)).c_str(), F_OK) != 0) return "no process " + std::to_string(root);
  // The socket inodes the tree holds.
  std::set<std::string> held;
  const std::vector<pid_t> tree = ProcessTree(root);
  if (std::find(tree.begin(), tree.end(), getpid()) != tree.end()) {
    return "process " + std::to_string(root) +
           " is an ancestor of this harness: the load generator's own work "
           "would be counted as the server's";
  }
  for (const pid_t pid : tree) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* fds = opendir(dir.c_str());
    if (fds == nullptr) {
      return "cannot read the open files of process " + std::to_string(pid) + ": " + std::strerror(errno);
    }
    while (dirent* entry = readdir(fds)) {
      char target[64] = {};
      if (readlinkat(dirfd(fds), entry->d_name, target, sizeof target - 1) > 0 &&
          std::string_view(target).rfind("socket:[", 0) == 0) {
        held.insert(std::string(target + 8, std::strlen(target) - 9));
      }
    }
    closedir(fds);
  }
  // The sockets bound to the port, in the root's own network namespace (/proc/PID/net): for TCP
  // the listening one (state 0A), for UDP any.
  for (const char* table : udp ? std::vector<const char*>{"udp", "udp6"} : std::vector<const char*>{"tcp", "tcp6"}) {
    std::istringstream in(ReadProcFile("/proc/" + std::to_string(root) + "/net/" + table));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      const size_t colon = local.rfind(':');
      if (colon == std::string::npos || std::strtoul(local.c_str() + colon + 1, nullptr, 16) != port) continue;
      if (!udp && state != "0A") continue;
      if (held.count(inode)) return "";
    }
  }
  return "process " + std::to_string(root) + " and its children hold no " +
         (udp ? "UDP socket bound to" : "socket listening on") + " port " + std::to_string(port) +
         ": not the server at --target";
}

}  // namespace harness
