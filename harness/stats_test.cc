#include "harness/stats.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace harness
