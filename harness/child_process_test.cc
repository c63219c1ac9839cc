#include "harness/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

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
