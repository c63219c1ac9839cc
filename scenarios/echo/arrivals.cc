#include "scenarios/echo/arrivals.h"

#include <fmt/format.h>

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

void Intervals::Record(int64_t since_start_ns, uint64_t latency_ns) {
  if (since_start_ns < 0) return;
  const auto k = static_cast<size_t>(since_start_ns / kIntervalNs);
  if (latency.size() <= k) latency.resize(k + 1);
  latency[k].Record(latency_ns);
}

void Intervals::Merge(const Intervals& o) {
  if (latency.size() < o.latency.size()) latency.resize(o.latency.size());
  for (size_t k = 0; k < o.latency.size(); ++k) latency[k].Merge(o.latency[k]);
}

std::string Drift(const Intervals& intervals) {
  const size_t n = intervals.latency.size(), third = n / 3;
  if (n < 6) return "";
  harness::Histogram first, last;
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
