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

}  // namespace
}  // namespace harness
