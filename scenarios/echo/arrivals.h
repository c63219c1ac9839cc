// How an open loop's messages are spaced in time, and what the load generator checks of its own
// sending: the arrival process (Poisson or uniform, seeded), the coefficient of variation of the gaps
// it actually left between sends, and whether a window's latency drifted from its start to its end.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

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

// A small log-linear histogram for one interval's round trips: values below 16 exact, above that 16
// buckets to each power of two (within 6.25%), 4 KB, so that a long window's hundred intervals cost
// what one full-precision histogram does. Mergeable by adding counts.
class CoarseHistogram {
 public:
  void Record(uint64_t value);
  void Merge(const CoarseHistogram& other);
  uint64_t count() const { return count_; }
  // The value at percentile p in [0, 100] by nearest rank, as the upper edge of its bucket (never
  // above the largest recorded); 0 when empty.
  uint64_t Percentile(double p) const;

 private:
  static constexpr int kSubBits = 4;
  static size_t IndexOf(uint64_t value);
  static uint64_t UpperEdge(size_t index);
  std::array<uint32_t, 64 << kSubBits> counts_{};
  uint64_t count_ = 0, max_ = 0;
};

// The window's round trips in consecutive intervals from its start: 100 ms each, or for a window
// longer than kMostIntervals of them, a hundredth of it.
struct Intervals {
  static constexpr int64_t kIntervalNs = 100'000'000;  // 100 ms
  static constexpr int64_t kMostIntervals = 100;
  int64_t interval_ns = kIntervalNs;
  std::vector<CoarseHistogram> latency;  // by interval, in ns
  // Makes room for a window of `window_ns` beforehand (a histogram made while the load runs would
  // delay the sends due meanwhile), and chooses the interval.
  void Reserve(int64_t window_ns);
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
