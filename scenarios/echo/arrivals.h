// How an open loop's messages are spaced in time, and what the load generator checks of its own
// sending: the arrival process (Poisson or uniform, seeded), the coefficient of variation of the gaps
// it actually left between sends, and whether a window's latency drifted from its start to its end.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "harness/histogram.h"

namespace echo {

enum class Arrivals { kPoisson, kUniform };

// "poisson" or "uniform"; throws std::invalid_argument.
Arrivals ParseArrivals(const std::string& text);
const char* ToString(Arrivals a);

// The gaps between one sender's messages: exponential with mean 1 / rate (a Poisson process; the
// superposition of several senders' is Poisson again, at the sum of their rates), or all 1 / rate.
// Due times are kept as the sum of the gaps in ns as a double, so a uniform schedule does not drift
// however long it runs.
class ArrivalProcess {
 public:
  ArrivalProcess(Arrivals kind, double rate, uint64_t seed) : kind_(kind), rate_(rate), random_(seed) {}
  // The offset from the start, in ns, of the next message; each call is one message further.
  double NextOffsetNs() {
    const double at = offset_ns_;
    offset_ns_ += kind_ == Arrivals::kUniform ? 1e9 / rate_ : exponential_(random_) * 1e9 / rate_;
    return at;
  }

 private:
  const Arrivals kind_;
  const double rate_;
  std::mt19937_64 random_;
  std::exponential_distribution<double> exponential_{1.0};
  double offset_ns_ = 0;
};

// Moments of the gaps between consecutive sends, mergeable across senders (each has its own gaps).
struct GapStats {
  uint64_t count = 0;
  double sum = 0, squares = 0;  // of the gaps, in ns
  void Add(double gap_ns) {
    ++count;
    sum += gap_ns;
    squares += gap_ns * gap_ns;
  }
  void Merge(const GapStats& o) {
    count += o.count;
    sum += o.sum;
    squares += o.squares;
  }
  // Standard deviation over mean of the gaps (1: Poisson, 0: uniform); 0 with fewer than two gaps.
  double Cv() const;
};

// The window's round trips in consecutive intervals of `interval_ns` from its start.
struct Intervals {
  static constexpr int64_t kIntervalNs = 100'000'000;  // 100 ms
  std::vector<harness::Histogram> latency;               // by interval, in ns
  // Makes room for a window of `window_ns` beforehand: a histogram made while the load runs would
  // delay the sends due meanwhile.
  void Reserve(int64_t window_ns) { latency.resize(static_cast<size_t>(window_ns / kIntervalNs + 1)); }
  void Record(int64_t since_start_ns, uint64_t latency_ns);
  void Merge(const Intervals& o);
};

// Why a window's latency was not steady, or "": the median of its last third of intervals over
// that of its first third more than kDriftRatio apart either way (and by more than kDriftFloorNs,
// so that two small medians a few microseconds apart are not called a drift). Needs six intervals.
inline constexpr double kDriftRatio = 1.5;
inline constexpr uint64_t kDriftFloorNs = 20'000;
std::string Drift(const Intervals& intervals);

}  // namespace echo
