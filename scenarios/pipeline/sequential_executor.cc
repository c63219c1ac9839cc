// `sequential`: seed 002's synchronous submission: one item after another, download then parse.
#include "scenarios/pipeline/executor.h"

namespace pipeline {
namespace {

void RunSequential(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  for (int i = 0; i < config.workload.items; ++i) {
    DownloadBlocking(config, recorder, i, times);
    ParseItem(config, recorder, i, times);
  }
}

}  // namespace

HARNESS_REGISTER(ExecutorEntry, {"sequential", "one item after another (seed 002's synchronous form)",
                                 kDownloadsHoldWorkers, RunSequential});

}  // namespace pipeline
