// The least makespan any schedule could reach for a workload, to judge a model against.
#pragma once

#include <algorithm>
#include <vector>

namespace pipeline {

struct BoundInput {
  std::vector<double> download_s;  // per item
  double parse_s = 0;              // per item
  int workers = 1;                 // threads that may parse at once (0: unbounded)
  int cores = 1;
  bool downloads_occupy_workers = true;  // a blocking download holds a worker (pools, sequential)
};

struct Bound {
  double cpu = 0;       // all parsing spread over min(workers, cores)
  double critical = 0;  // the longest download and its parse: no item is done before
  double workers = 0;   // all blocking work spread over the workers (when downloads hold them)
  double value() const { return std::max({cpu, critical, workers}); }
};

Bound LowerBound(const BoundInput& in);

}  // namespace pipeline
