#include "harness/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "harness/process_usage.h"

namespace harness {
namespace {

using namespace std::chrono_literals;

TEST(ChildProcessTest, ReadsLinesAndReportsExit) {
  ChildProcess child({"/bin/sh", "-c", "echo hello; echo world; echo oops >&2; exit 3"});
  EXPECT_EQ(child.ReadLine(5s), "hello");
  EXPECT_EQ(child.ReadLine(5s), "world");
  EXPECT_EQ(child.ReadLine(5s), std::nullopt);
  EXPECT_EQ(child.Stop(1s), "exited with status 3");
  EXPECT_EQ(child.StderrTail(), "oops");
}

TEST(ChildProcessTest, StopEscalatesToSigkillAndReaps) {
  // A child that ignores SIGTERM: Stop() must still end it and reap it.
  ChildProcess child({"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"});
  ASSERT_EQ(child.ReadLine(5s), "ready");
  const pid_t pid = child.pid();
  EXPECT_TRUE(child.Running());
  const std::string how = child.Stop(200ms);
  EXPECT_NE(how.find("SIGKILL"), std::string::npos) << how;
  EXPECT_FALSE(child.Running());
  EXPECT_NE(kill(pid, 0), 0);  // gone, not a zombie of ours
}

TEST(ChildProcessTest, ReadLineTimesOut) {
  ChildProcess child({"/bin/sh", "-c", "sleep 5"});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(child.ReadLine(100ms), std::nullopt);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(ProcessUsageTest, ReadsThisProcess) {
  const auto usage = ReadProcessUsage(getpid());
  ASSERT_TRUE(usage.has_value());
  EXPECT_GT(usage->peak_rss_bytes, 0u);
  EXPECT_GE(usage->peak_rss_bytes, usage->rss_bytes);
  EXPECT_GE(usage->threads, 1u);
  EXPECT_FALSE(ReadProcessUsage(999999999).has_value());
}

// Hundreds of threads that each run a little (a thread per connection): each thread's own clock
// ticks stay at 0 (most run under a tick in all: 20 us every 5 ms), yet the process's grow. The
// CPU read between two readings lies within what the kernel's exact process clock counted between
// the readings' ends, give or take the tick of time that threads which ended are counted in.
TEST(ProcessUsageTest, CountsManyThreadsThatEachRunALittleOnce) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 400; ++i) {
    threads.emplace_back([&stop] {
      while (!stop.load()) {
        const auto until = std::chrono::steady_clock::now() + 20us;
        while (std::chrono::steady_clock::now() < until) {
        }
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  std::this_thread::sleep_for(100ms);
  const double a0 = ProcessCpuSeconds();
  const auto a = ReadProcessUsage(getpid());
  const double a1 = ProcessCpuSeconds();
  std::this_thread::sleep_for(500ms);
  const double b0 = ProcessCpuSeconds();
  const auto b = ReadProcessUsage(getpid());
  const double b1 = ProcessCpuSeconds();
  stop = true;
  for (auto& t : threads) t.join();
  ASSERT_TRUE(a && b);
  const double read = static_cast<double>(b->cpu_ns - a->cpu_ns) / 1e9, tick = 1.0 / sysconf(_SC_CLK_TCK);
  EXPECT_GE(read, b0 - a1 - tick);
  EXPECT_LE(read, b1 - a0 + tick);
}

// A child that spends ~300 ms of CPU in user space, then ~300 ms in the kernel (reading /dev/zero:
// the kernel clears the buffer), saying "user" and "kernel" as each phase ends.
TEST(ProcessUsageTest, SplitsUserAndKernelTimeAsTheProcessSpentThem) {
  ChildProcess child({"/bin/sh", "-c",
                      "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo user; "
                      "dd if=/dev/zero of=/dev/null bs=4M count=2000 status=none; echo kernel; sleep 5"});
  const auto start = ReadProcessTreeUsage(child.pid());
  ASSERT_TRUE(start.has_value());
  ASSERT_EQ(child.ReadLine(60s), "user");
  const auto middle = ReadProcessTreeUsage(child.pid());
  ASSERT_EQ(child.ReadLine(60s), "kernel");
  const auto end = ReadProcessTreeUsage(child.pid());
  ASSERT_TRUE(middle && end);
  auto user_share = [](const ProcessUsage& a, const ProcessUsage& b) {
    const double user = static_cast<double>(b.user_ns - a.user_ns), kernel = static_cast<double>(b.kernel_ns - a.kernel_ns);
    EXPECT_GT(user + kernel, 5e7);  // 50 ms at least: five ticks or more
    return user / (user + kernel);
  };
  EXPECT_GT(user_share(start->total, middle->total), 0.8);   // the shell's arithmetic
  EXPECT_LT(user_share(middle->total, end->total), 0.3);     // dd's read of /dev/zero, reaped by the shell
  child.Stop(1s);
}

}  // namespace
}  // namespace harness
