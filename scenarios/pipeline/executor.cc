#include "scenarios/pipeline/executor.h"

#include <thread>

namespace pipeline {
int Recorder::WorkerId() {
  thread_local const Recorder* owner = nullptr;
  thread_local int id = -1;
  if (owner != this) {
    owner = this;
    id = next_id_++;
  }
  return id;
}

void DownloadBlocking(const RunConfig& config, Recorder& recorder, int item, std::vector<ItemTimes>& times) {
  times[item].download_worker = recorder.WorkerId();
  times[item].download_start = recorder.Now();
  std::this_thread::sleep_for(config.downloads[item]);
  times[item].download_end = recorder.Now();
}

void ParseItem(const RunConfig& config, Recorder& recorder, int item, std::vector<ItemTimes>& times) {
  ItemTimes& t = times[item];
  t.worker = recorder.WorkerId();
  t.parse_start = recorder.Now();
  t.result = Parse(Page(config.workload, item), config.units);
  t.parse_end = recorder.Now();
}

void RunOnExecutor(Executor& executor, const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  for (int i = 0; i < config.workload.items; ++i) {
    if (!config.decoupled) {
      Submit(executor, [&, i] {
        DownloadBlocking(config, recorder, i, times);
        ParseItem(config, recorder, i, times);
        return 0;
      });
    } else {
      Submit(executor, [&, i] {
        DownloadBlocking(config, recorder, i, times);
        return i;
      }).AddDoneCallback([&](const Future<int>& downloaded) {
        const int item = downloaded.Result();
        Submit(executor, [&, item] {
          ParseItem(config, recorder, item, times);
          return 0;
        });
      });
    }
  }
  executor.Shutdown(true);  // waits for the parses the callbacks submit, too
}

BoundInput BoundInputFor(const ExecutorEntry& executor, const RunConfig& config, double parse_s, int cores) {
  BoundInput in;
  for (const auto& d : config.downloads) in.download_s.push_back(std::chrono::duration<double>(d).count());
  in.parse_s = parse_s;
  const bool hold = executor.traits & kDownloadsHoldWorkers;
  in.workers = (executor.traits & kTakesWorkers) ? config.workers : hold ? 1 : 0;
  in.cores = cores;
  in.downloads_occupy_workers = hold;
  in.one_parser = (executor.traits & kUsesProcesses) && config.decoupled;
  return in;
}

}  // namespace pipeline
