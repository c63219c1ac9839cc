#include "scenarios/echo/arrivals.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace echo {

Arrivals ParseArrivals(const std::string& text) {
  if (text == "poisson") return Arrivals::kPoisson;
  if (text == "uniform") return Arrivals::kUniform;
  throw std::invalid_argument("must be poisson or uniform: '" + text + "'");
}

const char* ToString(Arrivals a) { return a == Arrivals::kPoisson ? "poisson" : "uniform"; }

double GapStats::Cv() const {
  if (count < 2 || sum <= 0) return 0;
  const double n = static_cast<double>(count), mean = sum / n;
  const double variance = std::max(0.0, squares / n - mean * mean);
  return std::sqrt(variance) / mean;
}

size_t CoarseHistogram::IndexOf(uint64_t value) {
  if (value < (1u << kSubBits)) return static_cast<size_t>(value);
  const int exponent = 63 - __builtin_clzll(value);  // at least kSubBits
  const uint64_t sub = (value >> (exponent - kSubBits)) & ((1u << kSubBits) - 1);
  return static_cast<size_t>((exponent - kSubBits + 1) << kSubBits) + static_cast<size_t>(sub);
}

uint64_t CoarseHistogram::UpperEdge(size_t index) {
  if (index < (1u << kSubBits)) return index;
  const int exponent = static_cast<int>(index >> kSubBits) + kSubBits - 1;
  const uint64_t sub = index & ((1u << kSubBits) - 1);
  const uint64_t lowest = ((uint64_t{1} << kSubBits) + sub) << (exponent - kSubBits);
  return lowest + (uint64_t{1} << (exponent - kSubBits)) - 1;
}

void CoarseHistogram::Record(uint64_t value) {
  ++counts_[IndexOf(value)];
  ++count_;
  max_ = std::max(max_, value);
}

void CoarseHistogram::Merge(const CoarseHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

uint64_t CoarseHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  const auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(p / 100 * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(UpperEdge(i), max_);
  }
  return max_;
}

void Intervals::Reserve(int64_t window_ns) {
  interval_ns = std::max(kIntervalNs, (window_ns + kMostIntervals - 1) / kMostIntervals);
  latency.resize(static_cast<size_t>(window_ns / interval_ns + 1));
}

void Intervals::Record(int64_t since_start_ns, uint64_t latency_ns) {
  if (since_start_ns < 0) return;
  const auto k = static_cast<size_t>(since_start_ns / interval_ns);
  if (latency.size() <= k) latency.resize(k + 1);
  latency[k].Record(latency_ns);
}

void Intervals::Merge(const Intervals& o) {
  if (latency.empty()) interval_ns = o.interval_ns;
  if (latency.size() < o.latency.size()) latency.resize(o.latency.size());
  for (size_t k = 0; k < o.latency.size(); ++k) latency[k].Merge(o.latency[k]);
}

std::string Drift(const Intervals& intervals) {
  const size_t n = intervals.latency.size(), third = n / 3;
  if (n < 6) return "";
  CoarseHistogram first, last;
  for (size_t k = 0; k < third; ++k) first.Merge(intervals.latency[k]);
  for (size_t k = n - third; k < n; ++k) last.Merge(intervals.latency[k]);
  if (first.count() == 0 || last.count() == 0) return "";
  const uint64_t a = first.Percentile(50), b = last.Percentile(50);
  const uint64_t low = std::min(a, b), high = std::max(a, b);
  if (high - low <= kDriftFloorNs || static_cast<double>(high) <= kDriftRatio * static_cast<double>(low)) return "";
  return fmt::format("not steady: p50 {:.1f} us in the first third of the window, {:.1f} us in the last", a / 1e3,
                     b / 1e3);
}

}  // namespace echo
