// `threads`: a thread per task, unbounded: every download sleeps in a thread of its own.
#include "scenarios/pipeline/executor.h"

namespace pipeline {
namespace {

void RunThreads(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  ThreadPerTask executor;
  RunOnExecutor(executor, config, recorder, times);
}

}  // namespace

HARNESS_REGISTER(ExecutorEntry,
                 {"threads", "a thread per task (download; parse in the same or a new thread)", kHasModes, RunThreads});

}  // namespace pipeline
