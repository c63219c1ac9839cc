#include "scenarios/echo/arrivals.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace echo {
namespace {

GapStats GapsOf(Arrivals kind, double rate, uint64_t seed, int n) {
  ArrivalProcess process(kind, rate, seed);
  GapStats gaps;
  double last = process.NextOffsetNs();
  EXPECT_EQ(last, 0);  // the first message is due when the load begins
  for (int k = 0; k < n; ++k) {
    const double at = process.NextOffsetNs();
    gaps.Add(at - last);
    last = at;
  }
  return gaps;
}

TEST(Arrivals, PoissonGapsAreExponential) {
  const GapStats gaps = GapsOf(Arrivals::kPoisson, 10'000, 42, 200'000);
  EXPECT_NEAR(gaps.Cv(), 1.0, 0.02);
  EXPECT_NEAR(gaps.sum / static_cast<double>(gaps.count), 100'000, 1'000);  // mean gap 1 / rate, in ns
}

TEST(Arrivals, UniformGapsAreAlike) {
  const GapStats gaps = GapsOf(Arrivals::kUniform, 3'000, 42, 10'000);
  EXPECT_LT(gaps.Cv(), 1e-6);
  // No drift: message 10,000 is due at exactly 10,000 / rate.
  ArrivalProcess process(Arrivals::kUniform, 3'000, 1);
  double at = 0;
  for (int k = 0; k <= 10'000; ++k) at = process.NextOffsetNs();
  EXPECT_NEAR(at, 10'000 / 3'000.0 * 1e9, 1);
}

TEST(Arrivals, SeededAlike) {
  ArrivalProcess a(Arrivals::kPoisson, 1'000, 7), b(Arrivals::kPoisson, 1'000, 7), c(Arrivals::kPoisson, 1'000, 8);
  bool differs = false;
  for (int k = 0; k < 100; ++k) {
    const double x = a.NextOffsetNs();
    EXPECT_EQ(x, b.NextOffsetNs());
    differs |= x != c.NextOffsetNs();
  }
  EXPECT_TRUE(differs);
}

TEST(Arrivals, Parse) {
  EXPECT_EQ(ParseArrivals("poisson"), Arrivals::kPoisson);
  EXPECT_EQ(ParseArrivals("uniform"), Arrivals::kUniform);
  EXPECT_THROW(ParseArrivals("Poisson"), std::invalid_argument);
  EXPECT_THROW(ParseArrivals(""), std::invalid_argument);
}

TEST(GapStats, MergedAsOne) {
  GapStats a, b, all;
  for (double g : {1.0, 2.0, 3.0}) {
    a.Add(g);
    all.Add(g);
  }
  for (double g : {10.0, 20.0}) {
    b.Add(g);
    all.Add(g);
  }
  a.Merge(b);
  EXPECT_DOUBLE_EQ(a.Cv(), all.Cv());
  EXPECT_EQ(GapStats{}.Cv(), 0);
}

// Nine intervals: the first three's round trips at `first` us, the middle at 100, the last three at `last`.
Intervals Window(uint64_t first_us, uint64_t last_us) {
  Intervals w;
  for (int k = 0; k < 9; ++k) {
    const uint64_t us = k < 3 ? first_us : k >= 6 ? last_us : 100;
    for (int n = 0; n < 50; ++n) w.Record(k * Intervals::kIntervalNs + n, us * 1000 + n);
  }
  return w;
}

TEST(Drift, SteadyWindowIsNotFlagged) {
  EXPECT_EQ(Drift(Window(100, 100)), "");
  EXPECT_EQ(Drift(Window(100, 140)), "");  // within the ratio
  EXPECT_EQ(Drift(Window(10, 25)), "");    // 2.5x, but 15 us apart: under the floor
}

TEST(Drift, DriftEitherWayIsFlagged) {
  EXPECT_EQ(Drift(Window(100, 300)).rfind("not steady: p50 1", 0), 0u) << Drift(Window(100, 300));
  EXPECT_NE(Drift(Window(400, 100)), "");
}

TEST(Drift, TooFewIntervalsTellNothing) {
  Intervals w;
  for (int k = 0; k < 5; ++k) w.Record(k * Intervals::kIntervalNs, (k + 1) * 1'000'000);
  EXPECT_EQ(Drift(w), "");
}

TEST(CoarseHistogram, PercentilesWithinItsPrecision) {
  CoarseHistogram h;
  EXPECT_EQ(h.Percentile(50), 0u);
  for (uint64_t v = 1; v <= 1000; ++v) h.Record(v * 1000);  // 1 us .. 1 ms, in ns
  EXPECT_EQ(h.count(), 1000u);
  for (const double p : {50.0, 90.0, 99.0}) {
    const double exact = p * 10 * 1000;
    EXPECT_GE(static_cast<double>(h.Percentile(p)), exact) << p;  // the upper edge of its bucket
    EXPECT_LE(static_cast<double>(h.Percentile(p)), exact * 1.0625) << p;
  }
  EXPECT_EQ(h.Percentile(100), 1'000'000u);  // never above the largest recorded
  CoarseHistogram small, other;
  for (uint64_t v : {0u, 3u, 15u}) small.Record(v);  // below 16: exact
  EXPECT_EQ(small.Percentile(50), 3u);
  other.Record(uint64_t{1} << 63);  // the largest exponent has a bucket
  small.Merge(other);
  EXPECT_EQ(small.count(), 4u);
  EXPECT_EQ(small.Percentile(100), uint64_t{1} << 63);
}

TEST(Intervals, ALongWindowHasAHundredIntervalsAtMost) {
  Intervals w;
  w.Reserve(int64_t{3600} * 1'000'000'000);  // an hour: 36 s intervals
  EXPECT_EQ(w.interval_ns, int64_t{36} * 1'000'000'000);
  EXPECT_LE(w.latency.size(), 101u);
  Intervals second;
  second.Reserve(1'000'000'000);
  EXPECT_EQ(second.interval_ns, Intervals::kIntervalNs);
  EXPECT_EQ(second.latency.size(), 11u);  // room for one more: the window may run a little over
}

TEST(Intervals, RecordsByHundredMilliseconds) {
  Intervals w;
  w.Record(-1, 5);  // before the window: not counted
  w.Record(0, 5);
  w.Record(Intervals::kIntervalNs - 1, 6);
  w.Record(Intervals::kIntervalNs * 3, 7);
  ASSERT_EQ(w.latency.size(), 4u);
  EXPECT_EQ(w.latency[0].count(), 2u);
  EXPECT_EQ(w.latency[1].count(), 0u);
  EXPECT_EQ(w.latency[3].count(), 1u);
  Intervals other;
  other.Record(Intervals::kIntervalNs * 5, 1);
  w.Merge(other);
  EXPECT_EQ(w.latency.size(), 6u);
}

}  // namespace
}  // namespace echo
