#include "scenarios/pipeline/lower_bound.h"

#include <algorithm>
#include <numeric>

namespace pipeline {

Bound LowerBound(const BoundInput& in) {
  Bound b;
  const double items = static_cast<double>(in.download_s.size());
  const int parsers = in.workers > 0 ? std::min(in.workers, in.cores) : in.cores;
  b.cpu = items * in.parse_s / std::max(1, parsers);
  for (double d : in.download_s) b.critical = std::max(b.critical, d + in.parse_s);
  if (in.downloads_occupy_workers && in.workers > 0) {
    const double downloads = std::accumulate(in.download_s.begin(), in.download_s.end(), 0.0);
    b.workers = (downloads + items * in.parse_s) / in.workers;
  }
  return b;
}

}  // namespace pipeline
