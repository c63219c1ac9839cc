// A mergeable log-linear latency histogram (HdrHistogram's idea, written small).
//
// Values are non-negative integers (the harness records nanoseconds). Values below 2^kSubBucketBits
// are counted exactly; above that every power-of-two range is split into 2^(kSubBucketBits-1) equal
// sub-buckets, so any recorded value is known to within 1/1024 of itself (three significant digits).
// Record() is constant time and allocation-free. Two histograms merge exactly by adding counts, so
// several load generators (threads or hosts) combine without averaging percentiles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace harness {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 11;
  // Largest value recorded exactly as itself; larger values are clamped here (about 18 minutes in ns).
  static constexpr uint64_t kMaxValue = (uint64_t{1} << 40) - 1;

  Histogram();

  void Record(uint64_t value) { RecordN(value, 1); }
  void RecordN(uint64_t value, uint64_t n);
  void Merge(const Histogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }

  // The value at percentile p in [0, 100], by nearest rank: the smallest recorded value v such that
  // at least p% of recorded values are <= v, reported as the upper edge of its bucket (never above
  // max()). 0 when empty.
  uint64_t Percentile(double p) const;

  // {"unit": ..., "sub_bucket_bits": 11, "count", "min", "max", "sum", "buckets": [[lowest, n], ...]}
  // where each bucket is named by the lowest value it holds. FromJson(ToJson()) is exact.
  nlohmann::json ToJson(const char* unit = "ns") const;
  // Throws std::invalid_argument on a histogram of another shape.
  static Histogram FromJson(const nlohmann::json& j);

  // Bucket arithmetic, public for tests and for readers of the JSON.
  static size_t IndexOf(uint64_t value);
  static uint64_t LowestAt(size_t index);
  static uint64_t HighestAt(size_t index);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = 0;
  uint64_t max_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace harness
