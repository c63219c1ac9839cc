// The figures of synthetic windows: what an open loop whose own sends left late says of itself.
#include "scenarios/echo/window.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>

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

// The same window at 10,000 msgs/s with its gaps: the schedule's exponential (mean 100 us, CV 1),
// and the sends' as they left. A stall of `stall_us` held the sends due in it and sent them together.
Sample PoissonWindow(double stall_us) {
  Sample s = OpenWindow(10, 300);
  std::mt19937_64 random(7);
  std::exponential_distribution<double> gap(1.0 / 100'000);  // ns
  double due = 0, sent = 0, last_sent = 0;
  const double stall_from = 500e6, stall_to = stall_from + stall_us * 1e3;
  for (int i = 0; i < 10'000; ++i) {
    const double g = gap(random);
    due += g;
    s.load.due_gaps.Add(g);
    sent = due >= stall_from && due < stall_to ? stall_to : std::max(due, sent);
    if (i > 0) s.load.gaps.Add(sent - last_sent);
    last_sent = sent;
  }
  s.load.send_lateness.Record(static_cast<uint64_t>(stall_us * 1e3));
  return s;
}

TEST(WindowTest, ALoadGeneratorThatStalledIsSpoiledThoughItsLatenessP99WasPunctual) {
  // 10 ms held 100 sends of 10,000: lateness p99 stays within 50 us, the gaps' CV does not.
  const harness::Repetition rep = Figures(PoissonWindow(10'000), OpenConfig(), {});
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_LE(rep.metrics["send_lateness_p99_us"].get<double>(), kPunctualUs);
  EXPECT_NEAR(rep.metrics["scheduled_arrival_cv"].get<double>(), 1, 0.03);
  EXPECT_GT(rep.metrics["arrival_cv"].get<double>(), 1.1);
  EXPECT_EQ(rep.spoiled.rfind("load generator off its schedule: the gaps between its sends had a CV of 1.", 0), 0u)
      << rep.spoiled;
  EXPECT_NE(rep.spoiled.find("(burstier; its latest send 10000 us late)"), std::string::npos) << rep.spoiled;
}

TEST(WindowTest, AShortStallLeavesTheArrivalsAsAskedFor) {
  // 1 ms at 10,000 msgs/s: ten sends together, a change of the gaps' squared CV of about 0.01.
  const harness::Repetition rep = Figures(PoissonWindow(1'000), OpenConfig(), {});
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_NEAR(rep.metrics["arrival_cv"].get<double>(), rep.metrics["scheduled_arrival_cv"].get<double>(), 0.01);
  EXPECT_EQ(rep.spoiled, "");
}

TEST(WindowTest, ArrivalsStrayWhenTheirSquaredCvMovesByATenth) {
  static_assert(kArrivalScvBand == 0.1);
  EXPECT_FALSE(ArrivalsStrayed(1.0, 1.0));
  EXPECT_FALSE(ArrivalsStrayed(1.03, 0.99));  // 1.0609 - 0.9801 = 0.08
  EXPECT_TRUE(ArrivalsStrayed(1.13, 1.0));    // a 1.7 ms stall at 50,000 msgs/s on this VM
  EXPECT_TRUE(ArrivalsStrayed(0.94, 1.0));    // smoothed: the tightest gaps spaced out by the cost of a send
  EXPECT_FALSE(ArrivalsStrayed(0.3, 0.0));    // a uniform schedule's jitter: 0.09
  EXPECT_TRUE(ArrivalsStrayed(0.35, 0.0));
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
