// The download -> parse workload of seed 002, scaled: `items` pages, each downloaded in a time drawn
// (seeded, repeatable) from [download_min, download_max] -- real waiting, as the model does it: a
// blocking sleep or a timer -- then parsed with `parse` of real CPU work, whose result is
// checksummed so the compiler cannot drop it and so that every model can be checked to have parsed
// every item exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace pipeline {

using Seconds = std::chrono::duration<double>;

struct Workload {
  int items = 100;
  std::chrono::nanoseconds download_min = std::chrono::milliseconds(10);
  std::chrono::nanoseconds download_max = std::chrono::milliseconds(30);
  std::chrono::nanoseconds parse = std::chrono::milliseconds(1);
  uint64_t seed = 1;
};

// Every item's download time, the same for every model for one workload.
std::vector<std::chrono::nanoseconds> DownloadTimes(const Workload& w);

// The page item i downloads (its content: a number derived from the seed).
uint64_t Page(const Workload& w, int item);

// CPU work proportional to `units`, depending on every bit of `page`. Pure: equal inputs give
// equal results in every thread and process.
uint64_t Parse(uint64_t page, uint64_t units);

// How many units of Parse() take `parse` on this machine (measured once per process, cached).
uint64_t UnitsFor(std::chrono::nanoseconds parse);

// Sum of Parse() over every item: what every model must arrive at.
uint64_t ExpectedChecksum(const Workload& w, uint64_t units);

}  // namespace pipeline
