#include "harness/perf.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "harness/process_usage.h"

namespace harness {
namespace {

using namespace std::chrono_literals;

TEST(ParseSyscallCounts, TotalKindsAndOther) {
  const SyscallCounts c = ParseSyscallCounts(
      "# started on Wed Dec  2 18:38:19 2026\n\n"
      "1000,,raw_syscalls:sys_enter,3545945737,100.00,,\n"
      "0,,syscalls:sys_enter_read,3545945737,100.00,,\n"
      "400,,syscalls:sys_enter_recvfrom,3545945737,100.00,,\n"
      "399,,syscalls:sys_enter_sendto,3545945737,100.00,,\n");
  EXPECT_EQ(c.total, 1000u);
  EXPECT_EQ(c.by_kind.count("read"), 0u);  // kinds that did not occur are left out
  EXPECT_EQ(c.by_kind.at("recvfrom"), 400u);
  EXPECT_EQ(c.by_kind.at("sendto"), 399u);
  EXPECT_EQ(c.by_kind.at("other"), 201u);
}

TEST(ParseSyscallCounts, RefusesWhatWasNotCounted) {
  EXPECT_THROW(ParseSyscallCounts("<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n"), std::runtime_error);
  EXPECT_THROW(ParseSyscallCounts("12,,syscalls:sys_enter_read,1,100.00,,\n"), std::runtime_error);  // no total
}

TEST(ParseFoldedStacks, SumsCutsAndSorts) {
  const std::string text =
      "# Samples: 1000\n"
      "   100.00%  harness\n"
      "600 main;loop;send;tcp\n"
      "300 main;loop;recv\n"
      "50 main;loop;send;tcp\n"
      "1 a;b;c;d;e;f;g;h\n"
      "1 a;b;c;d;e;f;g;i\n";
  const auto stacks = ParseFoldedStacks(text, 0.01);
  ASSERT_EQ(stacks.size(), 3u);
  EXPECT_EQ(stacks[0], (std::pair<std::string, uint64_t>{"main;loop;send;tcp", 650}));
  EXPECT_EQ(stacks[1], (std::pair<std::string, uint64_t>{"main;loop;recv", 300}));
  EXPECT_EQ(stacks[2], (std::pair<std::string, uint64_t>{"a;b;c;d;e;f", 2}));  // two small ones, cut to 6 frames
}

TEST(ParseTopFunctions, TotalAndSelfShares) {
  const auto top = ParseTopFunctions(
      "# Overhead\n#\n    95.10%     2.50%  [k] do_syscall_64\n    71.04%     0.83%  [.] __send\n\n", 10);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].name, "[k] do_syscall_64");
  EXPECT_DOUBLE_EQ(top[0].total, 0.951);
  EXPECT_DOUBLE_EQ(top[1].self, 0.0083);
}

// The system call this process is blocked in (its number, /proc/PID/syscall), or -1 while it runs.
long BlockedIn(pid_t pid) {
  const std::string text = ReadProcFile("/proc/" + std::to_string(pid) + "/syscall");
  return text.empty() || text.rfind("running", 0) == 0 ? -1 : std::stol(text);
}

// A process that waits for `go`, then makes a known number of write() calls from itself, a thread it
// starts and a child it forks (all after the counters are on), says it is done and waits in read().
pid_t FakeServer(int go, int done) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int null = open("/dev/null", O_WRONLY);
  char byte = 0;
  if (read(go, &byte, 1) != 1) _exit(1);
  for (int i = 0; i < 1000; ++i) (void)!write(null, "x", 1);
  std::thread thread([null] {
    for (int i = 0; i < 500; ++i) (void)!write(null, "x", 1);
  });
  thread.join();
  if (const pid_t child = fork(); child == 0) {
    for (int i = 0; i < 200; ++i) (void)!write(null, "x", 1);
    _exit(0);
  } else {
    waitpid(child, nullptr, 0);
  }
  (void)!write(done, "d", 1);
  (void)!read(go, &byte, 1);  // until the test kills it
  _exit(0);
}

TEST(SyscallCounter, CountsATreeExactly) {
  if (geteuid() != 0) GTEST_SKIP() << "perf's tracepoints need root (or CAP_PERFMON)";
  int go[2], done[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(done), 0);
  const pid_t server = FakeServer(go[0], done[1]);
  SyscallCounter counter(server, {});
  while (BlockedIn(server) != 0) std::this_thread::sleep_for(1ms);  // in its first read(), not counted
  counter.Enable();
  ASSERT_EQ(write(go[1], "g", 1), 1);
  char byte = 0;
  ASSERT_EQ(read(done[0], &byte, 1), 1);
  while (BlockedIn(server) != 0) std::this_thread::sleep_for(1ms);  // in its second read(), counted
  counter.Disable();
  const SyscallCounts counts = counter.Finish();
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  EXPECT_EQ(counts.by_kind.at("write"), 1000u + 500u + 200u + 1u);
  EXPECT_EQ(counts.by_kind.at("read"), 1u);
  EXPECT_GT(counts.by_kind.at("other"), 0u);  // the thread's and the child's making and ending
  uint64_t sum = 0;
  for (const auto& [kind, n] : counts.by_kind) sum += n;
  EXPECT_EQ(sum, counts.total);
}

TEST(SyscallCounter, SaysWhyWhenThereIsNoProcess) {
  if (geteuid() != 0) GTEST_SKIP() << "perf's tracepoints need root (or CAP_PERFMON)";
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  try {
    SyscallCounter counter(gone, {});
    FAIL() << "perf attached to a process that is gone";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("perf"), std::string::npos) << e.what();
  }
  // Its private folder is gone with it.
  const char* tmp = std::getenv("TMPDIR");
  for (const auto& entry : std::filesystem::directory_iterator(tmp != nullptr ? tmp : "/tmp")) {
    EXPECT_EQ(entry.path().filename().string().rfind("harness-perf-", 0), std::string::npos) << entry.path();
  }
}

__attribute__((noinline)) uint64_t Spin(std::chrono::steady_clock::time_point until) {
  volatile uint64_t n = 0;  // the arithmetic, not the clock, takes the time
  while (std::chrono::steady_clock::now() < until) {
    for (int i = 0; i < 100000; ++i) n = n * 7 + 1;
  }
  return n;
}

TEST(Profiler, FindsTheFunctionThatSpins) {
  if (geteuid() != 0) GTEST_SKIP() << "perf's software clock on another process needs root (or CAP_PERFMON)";
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  const pid_t spinner = fork();
  if (spinner == 0) {
    char byte = 0;
    if (read(go[0], &byte, 1) != 1) _exit(1);
    const int odd = static_cast<int>(Spin(std::chrono::steady_clock::now() + 600ms) & 1);
    (void)!read(go[0], &byte, 1);  // until the test kills it (perf ends with the process it samples)
    _exit(odd);
  }
  Profiler profiler(spinner, {});
  while (BlockedIn(spinner) != 0) std::this_thread::sleep_for(1ms);
  profiler.Enable();
  ASSERT_EQ(write(go[1], "g", 1), 1);
  std::this_thread::sleep_for(50ms);
  while (BlockedIn(spinner) != 0) std::this_thread::sleep_for(1ms);
  profiler.Disable();
  const Profile profile = profiler.Finish();
  kill(spinner, SIGKILL);
  waitpid(spinner, nullptr, 0);
  EXPECT_GT(profile.samples, 100u);  // 600 ms at 997 Hz, less what the machine took from it
  ASSERT_FALSE(profile.top.empty());
  bool found = false;
  for (const auto& f : profile.top) found |= f.name.find("Spin") != std::string::npos && f.self > 0.5;
  EXPECT_TRUE(found) << profile.ToJson().dump();
  ASSERT_FALSE(profile.stacks.empty());
  EXPECT_NE(profile.stacks[0].first.find("Spin"), std::string::npos) << profile.stacks[0].first;
}

}  // namespace
}  // namespace harness
