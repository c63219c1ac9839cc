// `process_pool`: seed 002's ProcessPoolExecutor: `workers` processes forked before the first task
// take items from one shared task pipe whenever they are free (4-byte messages: each read takes one
// whole item); a download blocks its worker. Coupled, the worker also parses and its result crosses
// back over the reply pipe; decoupled, the parent parses in the done-callback.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "scenarios/pipeline/child_tasks.h"

namespace pipeline {
namespace {

// A worker: one item after another until the task pipe ends.
void WorkerLoop(const RunConfig& config, const Recorder& recorder, int worker, int task_fd, int reply_fd) {
  int32_t item = 0;
  while (true) {
    const ssize_t n = read(task_fd, &item, sizeof item);
    if (n < 0 && errno == EINTR) continue;
    if (n != sizeof item) return;  // the parent closed the pipe: no more work
    ChildDoItem(config, recorder, item, worker, reply_fd);
  }
}

// One end of the task pipe, closed when it goes out of scope or on Close().
struct PipeEnd {
  int fd = -1;
  ~PipeEnd() { Close(); }
  void Close() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

void RunProcessPool(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  const int items = config.workload.items;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  PipeEnd task_read{fds[0]}, task_write{fds[1]};
  ChildSet children;
  for (int w = 0; w < config.workers; ++w) {
    children.Fork([&, w](int reply_fd) {
      task_write.Close();  // or the pipe would never end for this worker
      WorkerLoop(config, recorder, w, task_read.fd, reply_fd);
    });
  }
  task_read.Close();
  children.CloseWriteEnd();
  // Items go into the task pipe as it has room; replies are read as they come, so that neither side
  // waits for the other when there are more items than a pipe holds.
  fcntl(task_write.fd, F_SETFL, O_NONBLOCK);
  int sent = 0, replies = 0;
  while (replies < items) {
    pollfd waits[2] = {{children.reply_fd(), POLLIN, 0}, {task_write.fd, POLLOUT, 0}};
    if (poll(waits, 2, -1) < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
    while (sent < items && (waits[1].revents & POLLOUT)) {
      const int32_t item = sent;
      if (write(task_write.fd, &item, sizeof item) != sizeof item) break;  // full again
      if (++sent == items) task_write.Close();                             // workers exit once the pipe is empty
    }
    if (waits[0].revents & (POLLIN | POLLHUP)) {
      ChildReply reply;
      if (!children.ReadReply(reply)) break;  // every worker has exited
      children.Apply(reply, config, recorder, /*parent_worker=*/config.workers, times);
      ++replies;
    }
  }
  task_write.Close();
  children.Finish(replies, items);
}

}  // namespace

HARNESS_REGISTER(ExecutorEntry, {"process_pool",
                                 "a pool of `workers` processes (ProcessPoolExecutor), tasks and results over pipes; "
                                 "decoupled, the parent parses",
                                 kTakesWorkers | kDownloadsHoldWorkers | kHasModes | kUsesProcesses, RunProcessPool});

}  // namespace pipeline
