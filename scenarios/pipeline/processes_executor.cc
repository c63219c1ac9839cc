// `processes`: a process per item, forked at once (multiprocessing.Process for each page): the child
// downloads and, coupled, parses; decoupled, the parent parses when the child's reply arrives.
#include "scenarios/pipeline/child_tasks.h"

namespace pipeline {
namespace {

void RunProcesses(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  const int items = config.workload.items;
  ChildSet children;
  for (int i = 0; i < items; ++i) {
    children.Fork([&, i](int reply_fd) { ChildDoItem(config, recorder, i, i, reply_fd); });
  }
  children.CloseWriteEnd();
  int replies = 0;
  for (ChildReply reply; replies < items && children.ReadReply(reply); ++replies) {
    children.Apply(reply, config, recorder, /*parent_worker=*/items, times);
  }
  children.Finish(replies, items);
}

}  // namespace

HARNESS_REGISTER(ExecutorEntry, {"processes", "a process per item; decoupled, the parent parses (its done-callback)",
                                 kHasModes | kUsesProcesses, RunProcesses});

}  // namespace pipeline
