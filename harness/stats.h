// Summary statistics over repetitions, and Jain's fairness index over per-connection counts.
// All functions accept an empty input and then return 0 (fairness: 0 as well, "no data").
#pragma once

#include <cstdint>
#include <vector>

namespace harness {

double Mean(const std::vector<double>& xs);
double Median(std::vector<double> xs);
// Nearest rank: the smallest value with at least p% of the values at or below it (the definition
// the latency histogram follows). p in [0, 100].
double Percentile(std::vector<double> xs, double p);
// Sample standard deviation (n - 1 in the denominator), 0 for fewer than two values.
double Stddev(const std::vector<double>& xs);
// Coefficient of variation: stddev / mean, 0 when the mean is 0.
double CoefficientOfVariation(const std::vector<double>& xs);
// Jain's index (sum x)^2 / (n * sum x^2): 1 when every connection got the same share, 1/n when one
// got everything. 0 when nothing was served at all.
double JainFairness(const std::vector<uint64_t>& counts);
// The index that `messages` round trips over `connections` would have were each given to a connection
// chosen at random (multinomial counts, the ratio of the expectations): m / (m + 1 - 1/n), m the round
// trips a connection. With few of them only an order (round-robin) is fairer than chance: 6 each give
// 0.86, 30 give 0.97. 0 when nothing was served.
double RandomOrderFairness(double messages, double connections);

}  // namespace harness
