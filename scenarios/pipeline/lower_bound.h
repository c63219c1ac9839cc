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
  bool one_parser = false;               // every parse runs in one thread (the parent of process models)
};

struct Bound {
  double cpu = 0;       // parsing, which starts as downloads end, spread over min(workers, cores)
                        // (or one thread): max over k of the k-th shortest download + the parses
                        // of the pages not yet downloaded then
  double critical = 0;  // the longest download and its parse: no item is done before
  double workers = 0;   // all blocking work spread over the workers (when downloads hold them)
  double value() const { return std::max({cpu, critical, workers}); }
};

Bound LowerBound(const BoundInput& in);

}  // namespace pipeline
