#include "harness/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace harness {
namespace {

// Nearest-rank percentile of sorted data: the definition Histogram::Percentile follows.
uint64_t ExactPercentile(const std::vector<uint64_t>& sorted, double p) {
  const auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(p / 100 * sorted.size())));
  return sorted[rank - 1];
}

void ExpectPercentilesMatch(const std::vector<uint64_t>& values) {
  Histogram h;
  for (uint64_t v : values) h.Record(v);
  std::vector<uint64_t> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double p : {0.0, 1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const double exact = static_cast<double>(ExactPercentile(sorted, p));
    const double got = static_cast<double>(h.Percentile(p));
    EXPECT_GE(got, exact) << "p" << p;  // reported as the bucket's upper edge: never below
    EXPECT_LE(got, exact * (1 + 1.0 / 1024) + 1) << "p" << p;
  }
  EXPECT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), sorted.front());
  EXPECT_EQ(h.max(), sorted.back());
}

TEST(HistogramTest, ExactBelowTwoThousandFortyEight) {
  Histogram h;
  for (uint64_t v = 0; v < 2048; ++v) {
    ASSERT_EQ(Histogram::LowestAt(Histogram::IndexOf(v)), v);
    ASSERT_EQ(Histogram::HighestAt(Histogram::IndexOf(v)), v);
  }
  for (uint64_t v = 1; v <= 1000; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 500u);
  EXPECT_EQ(h.Percentile(99), 990u);
  EXPECT_EQ(h.Percentile(100), 1000u);
  EXPECT_DOUBLE_EQ(h.mean(), 500.5);
}

TEST(HistogramTest, BucketsContainTheirValuesWithinOnePartInAThousand) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng() >> (24 + rng() % 40);
    const size_t index = Histogram::IndexOf(v);
    ASSERT_LE(Histogram::LowestAt(index), v);
    ASSERT_GE(Histogram::HighestAt(index), v);
    ASSERT_LE(Histogram::HighestAt(index) - Histogram::LowestAt(index), Histogram::LowestAt(index) / 1024);
    if (index > 0) ASSERT_EQ(Histogram::HighestAt(index - 1) + 1, Histogram::LowestAt(index));
  }
}

TEST(HistogramTest, PercentilesMatchExactOnesOnUniformData) {
  std::vector<uint64_t> values;
  for (uint64_t v = 1; v <= 200000; ++v) values.push_back(v * 37);
  ExpectPercentilesMatch(values);
}

TEST(HistogramTest, PercentilesMatchExactOnesOnLongTailedData) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> latency(std::log(50000.0), 1.2);  // ~50 us median, long tail
  std::vector<uint64_t> values;
  for (int i = 0; i < 100000; ++i) values.push_back(static_cast<uint64_t>(latency(rng)));
  ExpectPercentilesMatch(values);
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(7);
  Histogram a, b, all;
  for (int i = 0; i < 50000; ++i) {
    const uint64_t v = rng() % 10'000'000;
    (i % 3 ? a : b).Record(v);
    all.Record(v);
  }
  Histogram merged;
  merged.Merge(a);
  merged.Merge(b);
  EXPECT_EQ(merged.ToJson(), all.ToJson());
  for (double p : {50.0, 99.0, 99.9}) EXPECT_EQ(merged.Percentile(p), all.Percentile(p));
}

TEST(HistogramTest, JsonRoundTripIsExact) {
  Histogram h;
  for (uint64_t v : {1ull, 5000ull, 123456789ull, 123456789ull, 7ull}) h.Record(v);
  const Histogram back = Histogram::FromJson(h.ToJson());
  EXPECT_EQ(back.ToJson(), h.ToJson());
  EXPECT_EQ(back.Percentile(90), h.Percentile(90));
}

TEST(HistogramTest, FromJsonRejectsAnotherShape) {
  EXPECT_THROW(Histogram::FromJson({{"sub_bucket_bits", 7}, {"buckets", nlohmann::json::array()}}),
               std::invalid_argument);
  Histogram h;
  h.Record(100000);
  nlohmann::json j = h.ToJson();
  j["buckets"][0][0] = 100001;  // not the lowest value of any bucket
  EXPECT_THROW(Histogram::FromJson(j), std::invalid_argument);
}

TEST(HistogramTest, FromJsonRejectsBrokenInvariants) {
  Histogram h;
  for (uint64_t v : {300ull, 300ull, 5000ull, 90000ull}) h.Record(v);
  const nlohmann::json good = h.ToJson();
  ASSERT_NO_THROW(Histogram::FromJson(good));
  const auto broken = [&](auto edit) {
    nlohmann::json j = good;
    edit(j);
    return j;
  };
  const nlohmann::json cases[] = {
      broken([](nlohmann::json& j) { j["buckets"][0][1] = -3; }),                      // negative count
      broken([](nlohmann::json& j) { j["buckets"][0][1] = UINT64_MAX; }),              // overflows the sum
      broken([](nlohmann::json& j) { j["buckets"][0][1] = 0; }),                       // an empty bucket listed
      broken([](nlohmann::json& j) { j["count"] = 5; }),                               // count against buckets
      broken([](nlohmann::json& j) { std::swap(j["buckets"][0], j["buckets"][1]); }),  // out of order
      broken([](nlohmann::json& j) { j["max"] = 7; }),                                 // max outside the last bucket
      broken([](nlohmann::json& j) { j["min"] = 80000; }),                             // min outside the first
      broken([](nlohmann::json& j) { j["buckets"][0] = {300}; }),                      // not [lowest, count]
      broken([](nlohmann::json& j) { j["count"] = "4"; }),                             // not a number
      broken([](nlohmann::json& j) { j["sum"] = UINT64_MAX; }),                        // above count x max
      broken([](nlohmann::json& j) { j["sum"] = 1000; }),                              // below count x min
  };
  for (const auto& j : cases) EXPECT_THROW(Histogram::FromJson(j), std::invalid_argument) << j.dump();
}

TEST(HistogramTest, MergeRefusesASumThatWouldWrap) {
  Histogram big;
  big.RecordN(Histogram::kMaxValue, uint64_t{1} << 23);  // a sum of 2^63 - 2^23
  Histogram also = big;
  EXPECT_NO_THROW(also.Merge(big));  // 2^64 - 2^24: still fits
  EXPECT_THROW(also.Merge(big), std::invalid_argument);
}

TEST(HistogramTest, EmptyAndClamped) {
  Histogram h;
  EXPECT_EQ(h.Percentile(99), 0u);
  EXPECT_EQ(h.min(), 0u);
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.max(), Histogram::kMaxValue);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
}

}  // namespace
}  // namespace harness
