#include "harness/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

namespace harness {
namespace {

constexpr uint64_t kExact = uint64_t{1} << Histogram::kSubBucketBits;  // 2048 exact values
constexpr uint64_t kHalf = kExact / 2;                                 // sub-buckets per octave

size_t BucketCount() { return Histogram::IndexOf(Histogram::kMaxValue) + 1; }

}  // namespace

size_t Histogram::IndexOf(uint64_t value) {
  value = std::min(value, kMaxValue);
  if (value < kExact) return static_cast<size_t>(value);
  // shift puts value >> shift in [kHalf, kExact): each octave above the exact range has kHalf buckets.
  const int shift = std::bit_width(value) - kSubBucketBits;
  return static_cast<size_t>(kExact + (shift - 1) * kHalf + ((value >> shift) - kHalf));
}

uint64_t Histogram::LowestAt(size_t index) {
  if (index < kExact) return index;
  const uint64_t above = index - kExact;
  const int shift = static_cast<int>(above / kHalf) + 1;
  return (kHalf + above % kHalf) << shift;
}

uint64_t Histogram::HighestAt(size_t index) {
  if (index < kExact) return index;
  const int shift = static_cast<int>((index - kExact) / kHalf) + 1;
  return LowestAt(index) + (uint64_t{1} << shift) - 1;
}

Histogram::Histogram() : counts_(BucketCount(), 0) {}

void Histogram::RecordN(uint64_t value, uint64_t n) {
  if (n == 0) return;
  value = std::min(value, kMaxValue);
  counts_[IndexOf(value)] += n;
  if (count_ == 0 || value < min_) min_ = value;
  if (value > max_) max_ = value;
  count_ += n;
  sum_ += value * n;
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  uint64_t count = 0, sum = 0;
  if (__builtin_add_overflow(count_, other.count_, &count) || __builtin_add_overflow(sum_, other.sum_, &sum)) {
    throw std::invalid_argument("latency histogram: merged counts or sum overflow");
  }
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void Histogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = min_ = max_ = sum_ = 0;
}

uint64_t Histogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  const double exact_rank = std::ceil(p / 100.0 * static_cast<double>(count_));
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(exact_rank));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(HighestAt(i), min_, max_);
  }
  return max_;
}

nlohmann::json Histogram::ToJson(const char* unit) const {
  nlohmann::json buckets = nlohmann::json::array();
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) buckets.push_back({LowestAt(i), counts_[i]});
  }
  return {{"unit", unit}, {"sub_bucket_bits", kSubBucketBits}, {"count", count_}, {"min", min()}, {"max", max_},
          {"sum", sum_},  {"buckets", std::move(buckets)}};
}

namespace {

uint64_t Unsigned(const nlohmann::json& j, const char* what) {
  if (!j.is_number_unsigned())
    throw std::invalid_argument(std::string("latency histogram: ") + what + " is not a count");
  return j.get<uint64_t>();
}

}  // namespace

// A histogram from a file is checked against every invariant ToJson() keeps, so that a hand-edited
// or corrupted file is refused rather than merged into wrong percentiles.
Histogram Histogram::FromJson(const nlohmann::json& j) {
  if (!j.is_object() || j.value("sub_bucket_bits", -1) != kSubBucketBits || !j.contains("buckets") ||
      !j["buckets"].is_array()) {
    throw std::invalid_argument("latency histogram: expected sub_bucket_bits " + std::to_string(kSubBucketBits) +
                                " and a buckets array");
  }
  Histogram h;
  uint64_t total = 0;
  size_t first = 0, previous = 0;
  for (const auto& b : j["buckets"]) {
    if (!b.is_array() || b.size() != 2)
      throw std::invalid_argument("latency histogram: a bucket is not [lowest, count]");
    const uint64_t lowest = Unsigned(b[0], "a bucket's lowest value");
    const uint64_t n = Unsigned(b[1], "a bucket's count");
    const size_t index = IndexOf(lowest);
    if (lowest > kMaxValue || LowestAt(index) != lowest) {
      throw std::invalid_argument("latency histogram: " + std::to_string(lowest) +
                                  " is not the lowest value of a bucket");
    }
    if (n == 0 || (total > 0 && index <= previous)) {
      throw std::invalid_argument("latency histogram: buckets must be non-empty and in increasing order");
    }
    if (__builtin_add_overflow(total, n, &total)) throw std::invalid_argument("latency histogram: counts overflow");
    if (total == n) first = index;
    h.counts_[index] = n;
    previous = index;
  }
  h.count_ = Unsigned(j.at("count"), "count");
  h.min_ = Unsigned(j.at("min"), "min");
  h.max_ = Unsigned(j.at("max"), "max");
  h.sum_ = Unsigned(j.at("sum"), "sum");
  if (h.count_ != total) {
    throw std::invalid_argument("latency histogram: count " + std::to_string(h.count_) + " but its buckets hold " +
                                std::to_string(total));
  }
  if (total > 0 && (IndexOf(h.min_) != first || IndexOf(h.max_) != previous || h.min_ > h.max_)) {
    throw std::invalid_argument("latency histogram: min and max do not fall in its first and last buckets");
  }
  // Every value lies in [min, max], so their sum lies in [count x min, count x max].
  const unsigned __int128 count = total, sum = h.sum_;
  if (sum < count * h.min_ || sum > count * h.max_) {
    throw std::invalid_argument("latency histogram: sum " + std::to_string(h.sum_) +
                                " is not between count x min and "
                                "count x max");
  }
  return h;
}

}  // namespace harness
