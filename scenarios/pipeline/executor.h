// A pipeline executor: runs every item's download then parse under one concurrency model, filling
// in each item's timeline. One file per model registers itself with one line (harness/registry.h):
//
//   HARNESS_REGISTER(ExecutorEntry, {"thread_pool", "...", kTakesWorkers | kDownloadsHoldWorkers, RunThreadPool});
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/registry.h"
#include "scenarios/pipeline/futures.h"
#include "scenarios/pipeline/lower_bound.h"
#include "scenarios/pipeline/workload.h"

namespace pipeline {

struct ItemTimes {
  int worker = -1;           // which thread parsed it, numbered from 0 in order of first use
  int download_worker = -1;  // which thread waited for its download; -1: none did (a timer)
  double download_start = 0, download_end = 0, parse_start = 0, parse_end = 0;  // s since the start
  uint64_t result = 0;
};

struct RunConfig {
  Workload workload;
  int workers = 1;
  bool decoupled = false;  // parse from the download's done-callback instead of in the same task
  uint64_t units = 1;      // Parse() units per item
  std::vector<std::chrono::nanoseconds> downloads;
};

// The clock and the per-thread numbering shared by the items of one run.
class Recorder {
 public:
  double Now() const { return Seconds(std::chrono::steady_clock::now() - start_).count(); }
  int WorkerId();

 private:
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<int> next_id_{0};
};

// The two halves of an item, as every model does them. Each writes only times[item].
void DownloadBlocking(const RunConfig& config, Recorder& recorder, int item, std::vector<ItemTimes>& times);
void ParseItem(const RunConfig& config, Recorder& recorder, int item, std::vector<ItemTimes>& times);

// Seed 002 on a concurrent.futures-style executor: coupled, a task downloads and parses; decoupled,
// a task downloads and its done-callback submits the parse. Returns when every item is parsed.
void RunOnExecutor(Executor& executor, const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times);

enum ExecutorTraits : unsigned {
  kTakesWorkers = 1,          // --workers means something to it
  kDownloadsHoldWorkers = 2,  // a download blocks a worker (for the lower bound)
  kHasModes = 4,              // coupled and decoupled differ
  kUsesProcesses = 8,         // items run in child processes; decoupled, the parent parses them all
};

using RunFn = void (*)(const RunConfig&, Recorder&, std::vector<ItemTimes>&);

struct ExecutorEntry {
  std::string name;
  std::string description;
  unsigned traits;
  RunFn run;
};

// What bounds a run of `executor` on `config`: its downloads, `parse_s` per item, the workers its
// traits say hold downloads or parse, on `cores` cores.
BoundInput BoundInputFor(const ExecutorEntry& executor, const RunConfig& config, double parse_s, int cores);

inline const std::vector<ExecutorEntry>& Executors() { return harness::Registry<ExecutorEntry>::All(); }
inline const ExecutorEntry* FindExecutor(const std::string& name) {
  return harness::Registry<ExecutorEntry>::Find(name);
}

}  // namespace pipeline
