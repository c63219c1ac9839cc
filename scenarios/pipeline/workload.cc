#include "scenarios/pipeline/workload.h"

#include <algorithm>
#include <mutex>
#include <random>

namespace pipeline {

std::vector<std::chrono::nanoseconds> DownloadTimes(const Workload& w) {
  std::mt19937_64 rng(w.seed);
  std::uniform_int_distribution<int64_t> ns(w.download_min.count(), w.download_max.count());
  std::vector<std::chrono::nanoseconds> times;
  for (int i = 0; i < w.items; ++i) times.emplace_back(ns(rng));
  return times;
}

uint64_t Page(const Workload& w, int item) {
  uint64_t x = w.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(item) + 1;
  x ^= x >> 31;
  return x * 0xBF58476D1CE4E5B9ull;
}

uint64_t Parse(uint64_t page, uint64_t units) {
  uint64_t x = page | 1;
  for (uint64_t i = 0; i < units; ++i) {  // xorshift64*: a data dependency the compiler must keep
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x *= 0x2545F4914F6CDD1Dull;
  }
  return x;
}

uint64_t UnitsFor(std::chrono::nanoseconds parse) {
  static std::once_flag once;
  static double units_per_ns = 0;
  std::call_once(once, [] {
    // The fastest of ten runs, after 30 ms of the same work to wake the core up: the machine's speed,
    // not its noise (a cold start of five runs once came out 25% slow).
    constexpr uint64_t kUnits = 2'000'000;
    const auto warm_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(30);
    for (uint64_t i = 0; std::chrono::steady_clock::now() < warm_until; ++i) {
      volatile uint64_t sink = Parse(i, kUnits / 10);
      (void)sink;
    }
    double best = 1e300;
    for (int i = 0; i < 10; ++i) {
      const auto start = std::chrono::steady_clock::now();
      volatile uint64_t sink = Parse(static_cast<uint64_t>(i) + 7, kUnits);
      (void)sink;
      best = std::min(best, static_cast<double>((std::chrono::steady_clock::now() - start).count()));
    }
    units_per_ns = static_cast<double>(kUnits) / best;
  });
  return std::max<uint64_t>(1, static_cast<uint64_t>(units_per_ns * static_cast<double>(parse.count())));
}

uint64_t ExpectedChecksum(const Workload& w, uint64_t units) {
  uint64_t sum = 0;
  for (int i = 0; i < w.items; ++i) sum += Parse(Page(w, i), units);
  return sum;
}

}  // namespace pipeline
