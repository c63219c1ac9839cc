// `thread_pool`: seed 002's ThreadPoolExecutor: `workers` threads; a download blocks its worker.
#include "scenarios/pipeline/executor.h"

namespace pipeline {
namespace {

void RunThreadPool(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  ThreadPool pool(config.workers);
  RunOnExecutor(pool, config, recorder, times);
}

}  // namespace

HARNESS_REGISTER(ExecutorEntry,
                 {"thread_pool", "a pool of `workers` threads (ThreadPoolExecutor); downloads hold a worker",
                  kTakesWorkers | kDownloadsHoldWorkers | kHasModes, RunThreadPool});

}  // namespace pipeline
