// The server's CPU read at a window's edges: a process's CPU clock, read from outside it.
#include "harness/process_usage.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <ctime>

namespace harness {
namespace {

uint64_t OwnCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

void BurnUntil(uint64_t own_cpu_ns) {
  volatile uint64_t x = 0;
  while (OwnCpuNs() < own_cpu_ns) x = x + 1;
}

TEST(ProcessUsageTest, ATreesCpuIsTheSumOfItsProcessesClocks) {
  // The child burns 50 ms of CPU by its own clock, then waits: read from here, it has at least
  // that (the reading comes later, and a clock never runs backwards).
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    BurnUntil(OwnCpuNs() + 50'000'000);
    char one = 1;
    if (write(ready[1], &one, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char one = 0;
  ASSERT_EQ(read(ready[0], &one, 1), 1);
  const uint64_t mine_before = OwnCpuNs();
  const auto tree = TreeCpuNs({getpid(), child});
  const uint64_t mine_after = OwnCpuNs();
  ASSERT_TRUE(tree.has_value());
  EXPECT_GE(*tree, 50'000'000u + mine_before);
  const auto child_alone = TreeCpuNs({child});
  ASSERT_TRUE(child_alone.has_value());
  EXPECT_GE(*child_alone, 50'000'000u);
  EXPECT_LE(*tree, *child_alone + mine_after);  // the child has stopped: only this process moved
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  // Gone (reaped): its time has left any sum, which says so rather than count less.
  EXPECT_FALSE(TreeCpuNs({getpid(), child}).has_value());
  close(ready[0]);
  close(ready[1]);
}

}  // namespace
}  // namespace harness
