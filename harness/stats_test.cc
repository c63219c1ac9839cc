#include "harness/stats.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace harness {
namespace {

TEST(StatsTest, MeanMedianStddevCv) {
  const std::vector<double> xs = {2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(Mean(xs), 5);
  EXPECT_DOUBLE_EQ(Median(xs), 4.5);
  EXPECT_NEAR(Stddev(xs), 2.138089935, 1e-9);  // sample standard deviation
  EXPECT_NEAR(CoefficientOfVariation(xs), 2.138089935 / 5, 1e-9);
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
}

TEST(StatsTest, PercentileByNearestRank) {
  const std::vector<double> xs = {15, 20, 35, 40, 50};
  EXPECT_DOUBLE_EQ(Percentile(xs, 30), 20);
  EXPECT_DOUBLE_EQ(Percentile(xs, 40), 20);
  EXPECT_DOUBLE_EQ(Percentile(xs, 50), 35);
  EXPECT_DOUBLE_EQ(Percentile(xs, 100), 50);
  EXPECT_DOUBLE_EQ(Percentile(xs, 0), 15);
  EXPECT_EQ(Percentile({}, 50), 0);
}

TEST(StatsTest, EdgeCases) {
  EXPECT_EQ(Mean({}), 0);
  EXPECT_EQ(Median({}), 0);
  EXPECT_EQ(Stddev({1}), 0);
  EXPECT_EQ(CoefficientOfVariation({0, 0}), 0);
}

TEST(StatsTest, JainFairness) {
  EXPECT_DOUBLE_EQ(JainFairness({5, 5, 5, 5}), 1);
  EXPECT_DOUBLE_EQ(JainFairness({10, 0, 0, 0}), 0.25);
  // Seed 001: a pool of 3 serving 10 clients: 3 served equally, 7 starved.
  EXPECT_DOUBLE_EQ(JainFairness({9, 9, 9, 0, 0, 0, 0, 0, 0, 0}), 0.3);
  EXPECT_EQ(JainFairness({0, 0}), 0);
  EXPECT_EQ(JainFairness({}), 0);
}

TEST(StatsTest, RandomOrderFairness) {
  EXPECT_DOUBLE_EQ(RandomOrderFairness(60'000, 10'000), 6 / (7 - 1e-4));  // 0.857
  EXPECT_DOUBLE_EQ(RandomOrderFairness(7, 1), 1);                         // one connection: always fair
  // 2 round trips, 2 connections: both to one (probability 1/2, sum of squares 4) or one each (2): the
  // ratio of the expectations is 2^2 / (2 x 3) = 2/3 (the expected index itself is 3/4).
  EXPECT_DOUBLE_EQ(RandomOrderFairness(2, 2), 2.0 / 3);
  EXPECT_EQ(RandomOrderFairness(0, 10), 0);
  // Against the thing itself: 200,000 round trips given to 10,000 connections at random (seeded).
  std::mt19937_64 rng(25);
  std::uniform_int_distribution<size_t> pick(0, 9'999);
  std::vector<uint64_t> counts(10'000);
  for (int k = 0; k < 200'000; ++k) ++counts[pick(rng)];
  EXPECT_NEAR(JainFairness(counts), RandomOrderFairness(200'000, 10'000), 0.005);  // 0.952
}

}  // namespace
}  // namespace harness
