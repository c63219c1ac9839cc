// What a process costs, read from /proc: CPU time, peak resident memory, threads, context switches.
// Used on the server under test at the start and end of each measurement window.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace harness {

struct ProcessUsage {
  uint64_t cpu_ns = 0;                  // user + system, all threads alive or dead (clock-tick resolution)
  uint64_t reaped_children_cpu_ns = 0;  // cutime + cstime: children this process has waited for
  // The CPU time split by where it was spent, of the process and the children it has reaped
  // (utime + cutime, stime + cstime; clock ticks, the kernel's split of the exact total): a
  // window's share of each, not its total, which cpu_ns gives exactly.
  uint64_t user_ns = 0;
  uint64_t kernel_ns = 0;
  uint64_t peak_rss_bytes = 0;        // VmHWM: the high-water mark since the process started
  uint64_t rss_bytes = 0;             // VmRSS now
  uint64_t threads = 0;               // threads now
  uint64_t voluntary_switches = 0;    // summed over the threads alive now
  uint64_t involuntary_switches = 0;  // summed over the threads alive now
};

// The whole of a /proc file, or "" when it cannot be read. Never throws: a process may exit
// between open and read, and then read() fails with ESRCH, which std::ifstream turns into an
// exception (an ios_base::failure from basic_filebuf::underflow) in the middle of a measurement.
std::string ReadProcFile(const std::string& path);
// A task's time on a CPU in ns, exact (the first field of a /proc/.../schedstat at `path`);
// nullopt when it cannot be read (gone, or a kernel without schedstats).
std::optional<uint64_t> ReadSchedstat(const std::string& path);

// nullopt when the process is gone or /proc cannot be read.
std::optional<ProcessUsage> ReadProcessUsage(pid_t pid);

// The part of ReadProcessUsage cheap enough to sample often: no per-thread reads. CPU from stat
// (ticks), exact from schedstat for a single-threaded process; peak RSS, RSS and threads from
// status; switches of the main thread only. nullopt when the process is gone.
std::optional<ProcessUsage> ReadProcessSummary(pid_t pid);

// This process's CPU time (all threads), in seconds.
double ProcessCpuSeconds();

// This process's CPU time spent in user space and in the kernel (getrusage), in seconds.
struct CpuSplit {
  double user_s = 0, kernel_s = 0;
};
CpuSplit ProcessCpuSplit();

// What this process's threads wanted of the CPUs, in seconds: time run plus time runnable but
// waiting for a CPU (/proc/self/task/*/schedstat), summed over the threads alive now. Beside
// wall time it tells a starved process (it waited) from an idle one; 0 where the kernel keeps no
// schedstat.
double ProcessCpuDemandSeconds();

// CPU time of the children this process has waited for, in seconds.
double ReapedChildrenCpuSeconds();

// The children that thread `tid` of this process forked and has not yet reaped (zombies included).
std::vector<pid_t> ChildrenOfThread(pid_t tid);

// The path of this process's executable (the harness runs itself as servers); "" if unreadable.
std::string SelfExecutable();

// The process and every live descendant, summed: CPU, threads, switches, and RSS. Peak RSS is the
// sum of each process's own peak, an upper bound on the tree's (shared pages count once per
// process, as RSS always counts them). `processes` is how many there were.
struct TreeUsage {
  ProcessUsage total;
  uint64_t processes = 0;
};
std::optional<TreeUsage> ReadProcessTreeUsage(pid_t root);
// The same over `tree` (ProcessTree(root), root first, found by the caller, who may keep it): no
// scan of every process on the machine. A process that has left the tree since counts in its
// reaper's reaped-children time, as ever; one that has joined it does not count.
std::optional<TreeUsage> ReadProcessTreeUsage(const std::vector<pid_t>& tree);

// The CPU time of the processes of `tree`, every thread alive or exited, in ns: their process CPU
// clocks (clock_getcpuclockid), one system call each, exact. nullopt when one of them is gone
// (its time has left the sum: read the tree's usage instead).
std::optional<uint64_t> TreeCpuNs(const std::vector<pid_t>& tree);

// `root` and its live descendants, root first.
std::vector<pid_t> ProcessTree(pid_t root);

// "" when `root` or one of its descendants holds the socket listening on TCP `port` (bound to UDP
// `port`), in root's network namespace, and the tree does not hold this process; otherwise why not
// (no such process, another process, an ancestor of ours such as PID 1).
// Checked before sampling a server named by pid, so no other process is measured in its place.
std::string CheckServesPort(pid_t root, uint16_t port, bool udp);

}  // namespace harness
