#include "scenarios/pipeline/lower_bound.h"

#include <algorithm>
#include <numeric>

namespace pipeline {

Bound LowerBound(const BoundInput& in) {
  Bound b;
  const double items = static_cast<double>(in.download_s.size());
  const int parsers = in.one_parser ? 1 : in.workers > 0 ? std::min(in.workers, in.cores) : in.cores;
  // No parse starts before its download ends: the pages whose downloads end at or after the k-th
  // shortest still need all their parsing, spread over the parsers, after that moment.
  std::vector<double> released = in.download_s;
  std::sort(released.begin(), released.end());
  for (size_t k = 0; k < released.size(); ++k) {
    const double after = released[k] + static_cast<double>(released.size() - k) * in.parse_s / std::max(1, parsers);
    b.cpu = std::max(b.cpu, after);
  }
  for (double d : in.download_s) b.critical = std::max(b.critical, d + in.parse_s);
  if (in.downloads_occupy_workers && in.workers > 0) {
    const double downloads = std::accumulate(in.download_s.begin(), in.download_s.end(), 0.0);
    // Parsed in the parent (one_parser), a page holds its worker only while it downloads.
    b.workers = (downloads + (in.one_parser ? 0 : items * in.parse_s)) / in.workers;
  }
  return b;
}

}  // namespace pipeline
