#include "scenarios/echo/io_uring/busy_gate.h"

#include <gtest/gtest.h>

namespace echo::uring {
namespace {

constexpr int64_t kMs = 1'000'000;

// Feeds the gate one 10 ms window at a time: `cpu_ms` of the thread's CPU in it, `work_ms` of which
// requests' work burned.
class Loop {
 public:
  bool Window(int64_t cpu_ms, int64_t work_ms) {
    now_ += 10 * kMs;
    cpu_ += cpu_ms * kMs;
    work_ += work_ms * kMs;
    EXPECT_TRUE(gate_.Due(now_));
    return gate_.Update(now_, cpu_, work_);
  }
  BusyGate gate_;
  int64_t now_ = 0, cpu_ = 0, work_ = 0;
};

TEST(BusyGateTest, ALoopOverItsThresholdIsBusyUntilUnderTheLowerOne) {
  Loop loop;
  EXPECT_FALSE(loop.Window(8, 0));  // 80%: not yet
  EXPECT_TRUE(loop.Window(9, 0));   // 90%
  EXPECT_TRUE(loop.Window(7, 0));   // 70%: still, until under 60%
  EXPECT_FALSE(loop.Window(5, 0));
  EXPECT_FALSE(loop.Window(7, 0));  // 70% from idle: not busy
}

TEST(BusyGateTest, CpuThatRequestsBurnedIsNotTheLoops) {
  Loop loop;
  EXPECT_FALSE(loop.Window(10, 8));  // a full CPU, 80% of it requests' work: the loop's own is 20%
  EXPECT_FALSE(loop.Window(10, 2));  // 80% its own
  EXPECT_TRUE(loop.Window(10, 1));   // 90% its own
  EXPECT_FALSE(loop.Window(10, 5));  // 50%: no longer
}

TEST(BusyGateTest, AReadingIsDueOnceAWindowHasPassed) {
  BusyGate gate;
  EXPECT_FALSE(gate.Due(5 * kMs));
  EXPECT_TRUE(gate.Due(10 * kMs));
  EXPECT_TRUE(gate.Update(10 * kMs, 9 * kMs, 0));
  EXPECT_FALSE(gate.Due(19 * kMs));
  EXPECT_TRUE(gate.busy());
  EXPECT_TRUE(gate.Due(20 * kMs));
}

}  // namespace
}  // namespace echo::uring
