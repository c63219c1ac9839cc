// Pipeline work in child processes, shared by the process models (`processes`, `process_pool`): a
// forked child downloads an item (a blocking sleep) and, coupled, parses it; its times and parse
// result come back to the parent as one fixed-size message on a shared pipe. Decoupled, the parent
// parses each page in its done-callback, as Python's ProcessPoolExecutor runs callbacks in the parent
// (seed 002: the main process parses while the children only download).
//
// Children are forked from the thread that runs the model, do nothing but sleep, compute, write and
// _exit, and die with that thread (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "scenarios/pipeline/executor.h"

namespace pipeline {

// One item's figures from a child; written with one write() (smaller than PIPE_BUF, so atomic
// even when many children share the pipe).
struct ChildReply {
  int32_t item = -1;
  int32_t worker = -1;  // the child's number
  int32_t parsed = 0;   // 0: downloaded only (decoupled)
  int32_t unused = 0;
  double download_start = 0, download_end = 0, parse_start = 0, parse_end = 0;
  uint64_t result = 0;
};

// In a child: download `item`, parse it if the run is coupled, and write the reply to `reply_fd`.
void ChildDoItem(const RunConfig& config, const Recorder& recorder, int item, int worker, int reply_fd);

// The children of one run, with the pipe their replies come back on. Every child is reaped before
// this is destroyed: on a normal end by Finish(), otherwise killed.
class ChildSet {
 public:
  ChildSet();
  ~ChildSet();
  ChildSet(const ChildSet&) = delete;
  ChildSet& operator=(const ChildSet&) = delete;

  // Forks a child that runs `body(reply_fd)` and then _exits with 0. Throws when fork fails.
  template <typename Body>
  void Fork(Body&& body) {
    const pid_t pid = ForkChild();
    if (pid == 0) {
      body(reply_write_);
      ExitChild();
    }
    pids_.push_back(pid);
  }

  // After the last Fork(): the parent's copy of the write end is closed, so that the pipe reads as
  // ended once every child has exited.
  void CloseWriteEnd();
  int reply_fd() const { return reply_read_; }
  // Reads one reply; false at the end of the pipe (every child has exited). Throws on an error.
  bool ReadReply(ChildReply& reply);
  // Fills `times` from a reply; decoupled, parses in this (the parent's) thread, as worker
  // `parent_worker`.
  void Apply(const ChildReply& reply, const RunConfig& config, Recorder& recorder, int parent_worker,
             std::vector<ItemTimes>& times) const;
  // Reaps every child; throws naming the first that did not exit with 0, or if `replies` < items.
  void Finish(int replies, int items);

 private:
  pid_t ForkChild();
  [[noreturn]] static void ExitChild();

  int reply_read_ = -1, reply_write_ = -1;
  std::vector<pid_t> pids_;
};

}  // namespace pipeline
