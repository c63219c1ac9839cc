#include "harness/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace harness {

double Mean(const std::vector<double>& xs) {
  if (xs.empty()) return 0;
  return std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
}

double Median(std::vector<double> xs) {
  if (xs.empty()) return 0;
  const size_t mid = xs.size() / 2;
  std::nth_element(xs.begin(), xs.begin() + mid, xs.end());
  if (xs.size() % 2 == 1) return xs[mid];
  const double upper = xs[mid];
  const double lower = *std::max_element(xs.begin(), xs.begin() + mid);
  return (lower + upper) / 2;
}

double Percentile(std::vector<double> xs, double p) {
  if (xs.empty()) return 0;
  std::sort(xs.begin(), xs.end());
  const double rank = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(xs.size()));
  return xs[static_cast<size_t>(std::max(1.0, rank)) - 1];
}

double Stddev(const std::vector<double>& xs) {
  if (xs.size() < 2) return 0;
  const double m = Mean(xs);
  double squares = 0;
  for (double x : xs) squares += (x - m) * (x - m);
  return std::sqrt(squares / static_cast<double>(xs.size() - 1));
}

double CoefficientOfVariation(const std::vector<double>& xs) {
  const double m = Mean(xs);
  return m == 0 ? 0 : Stddev(xs) / m;
}

double JainFairness(const std::vector<uint64_t>& counts) {
  double sum = 0;
  double squares = 0;
  for (uint64_t c : counts) {
    sum += static_cast<double>(c);
    squares += static_cast<double>(c) * static_cast<double>(c);
  }
  if (squares == 0) return 0;
  return sum * sum / (static_cast<double>(counts.size()) * squares);
}

double RandomOrderFairness(double messages, double connections) {
  if (messages <= 0 || connections < 1) return 0;
  const double m = messages / connections;
  return m / (m + 1 - 1 / connections);
}

}  // namespace harness
