// The figures of synthetic windows: what an open loop whose own sends left late says of itself.
#include "scenarios/echo/window.h"

#include <gtest/gtest.h>

#include <chrono>

#include "scenarios/echo/slo.h"

namespace echo {
namespace {

// A whole 1 s window at 10,000 msgs/s over 100 connections, every round trip `round_trip_us`, and
// every send on time (1 us) but one in fifty, which left `late_us` late: p99 is `late_us`.
Sample OpenWindow(uint64_t late_us, uint64_t round_trip_us) {
  Sample s;
  LoadResult& load = s.load;
  load.ok = true;
  load.messages = load.scheduled = 10'000;
  load.window_seconds = 1;
  load.per_connection.assign(100, 100);
  for (uint64_t i = 0; i < load.messages; ++i) {
    load.latency.Record(round_trip_us * 1000);
    load.send_lateness.Record(i % 50 == 0 ? late_us * 1000 : 1000);
  }
  return s;
}

LoadConfig OpenConfig() {
  LoadConfig config;
  config.connections = 100;
  config.rate = 10'000;
  config.duration = std::chrono::seconds(1);
  return config;
}

bool Warned(const harness::Repetition& rep) {
  for (const auto& w : rep.warnings) {
    if (w.rfind("load generator late:", 0) == 0) return true;
  }
  return false;
}

TEST(WindowTest, AWindowWhoseSendsLeftLaterThanPunctualIsSpoiled) {
  const harness::Repetition rep = Figures(OpenWindow(80, 300), OpenConfig(), {});
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_NEAR(rep.metrics["send_lateness_p99_us"].get<double>(), 80, 4);
  EXPECT_TRUE(Warned(rep));  // 80 us is over a tenth of the 300 us round trip
  EXPECT_EQ(rep.spoiled.rfind("load generator late: its sends left 8", 0), 0u) << rep.spoiled;
  EXPECT_NE(rep.spoiled.find("over the 50 us it holds to"), std::string::npos) << rep.spoiled;
}

TEST(WindowTest, ItIsSpoiledThoughItsRoundTripsWereLongEnoughToHideTheLateness) {
  // The stall that delays the sends delays the replies: a long tail does not excuse it.
  const harness::Repetition rep = Figures(OpenWindow(80, 2000), OpenConfig(), {});
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_FALSE(Warned(rep));
  EXPECT_NE(rep.spoiled, "");
}

TEST(WindowTest, LatenessWithinPunctualIsOnlyWarnedOf) {
  // 40 us is over a tenth of the 300 us round trip (said), and within the 50 us the loop holds to.
  static_assert(kPunctualUs == 50);
  const harness::Repetition rep = Figures(OpenWindow(40, 300), OpenConfig(), {});
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_TRUE(Warned(rep));
  EXPECT_EQ(rep.spoiled, "");
}

TEST(WindowTest, PunctualSendsWithLongRoundTripsAreNeitherWarnedOfNorSpoiled) {
  const harness::Repetition rep = Figures(OpenWindow(30, 2000), OpenConfig(), {});
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_FALSE(Warned(rep));
  EXPECT_EQ(rep.spoiled, "");
}

TEST(WindowTest, AClosedLoopHasNoScheduleToBeLateFor) {
  LoadConfig config = OpenConfig();
  config.rate = 0;
  Sample s = OpenWindow(80, 300);
  s.load.send_lateness = harness::Histogram();
  s.load.scheduled = 0;
  const harness::Repetition rep = Figures(s, config, {});
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_FALSE(rep.metrics.contains("send_lateness_p99_us"));
  EXPECT_EQ(rep.spoiled, "");
}

harness::RunSpec EchoRun(harness::CpuList server, harness::CpuList client, int client_threads = 1) {
  harness::RunSpec run;
  run.params = {{"connections", 100}, {"size", 64}, {"rate", 10000}, {"client-threads", client_threads}};
  run.placement.server = std::move(server);
  run.placement.client = std::move(client);
  return run;
}

TEST(WindowTest, APollYieldsItsCpuOnlyWhereSomethingOfTheRunMayWantIt) {
  // Split: the server on CPU 0, one driver alone on CPU 1.
  EXPECT_FALSE(ConfigFor(EchoRun({0}, {1}), {}).yield_when_polling);
  EXPECT_FALSE(ConfigFor(EchoRun({0, 1}, {2, 3}, 2), {}).yield_when_polling);
  // Two drivers on one CPU, a CPU shared with the server, nothing pinned, a server of unknown CPUs.
  EXPECT_TRUE(ConfigFor(EchoRun({0}, {1}, 2), {}).yield_when_polling);
  EXPECT_TRUE(ConfigFor(EchoRun({0, 1}, {1}), {}).yield_when_polling);
  EXPECT_TRUE(ConfigFor(EchoRun({}, {}), {}).yield_when_polling);
  EXPECT_TRUE(ConfigFor(EchoRun({}, {1}), {}).yield_when_polling);
}

}  // namespace
}  // namespace echo
