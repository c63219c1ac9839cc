// `fibers`: a Boost.Fiber per item on `workers` threads sharing one ready queue (shared_work). A
// download is this_fiber::sleep_for, which parks the fiber and holds no thread; the parse runs in
// the same fiber (coupled) or in a new fiber the download's fiber launches (decoupled), on whichever
// thread is free. The threads are the run's own, so no fiber scheduler outlives the run.
#include <boost/fiber/all.hpp>

#include <mutex>
#include <thread>

#include "scenarios/pipeline/executor.h"

namespace pipeline {
namespace {

// Counts finished items; the threads leave when every item is parsed.
class Countdown {
 public:
  explicit Countdown(int count) : count_(count) {}
  void Done() {
    std::unique_lock<boost::fibers::mutex> lock(mutex_);
    if (--count_ == 0) finished_.notify_all();
  }
  void Wait() {
    std::unique_lock<boost::fibers::mutex> lock(mutex_);
    finished_.wait(lock, [this] { return count_ == 0; });
  }

 private:
  boost::fibers::mutex mutex_;
  boost::fibers::condition_variable finished_;
  int count_;  // guarded by mutex_
};

void RunItem(const RunConfig& config, Recorder& recorder, int item, std::vector<ItemTimes>& times, Countdown& left) {
  ItemTimes& t = times[item];
  t.download_start = recorder.Now();
  boost::this_fiber::sleep_for(config.downloads[item]);
  t.download_end = recorder.Now();
  if (config.decoupled) {
    boost::fibers::fiber([&, item] {
      ParseItem(config, recorder, item, times);
      left.Done();
    }).detach();
  } else {
    ParseItem(config, recorder, item, times);
    left.Done();
  }
}

void RunFibers(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  Countdown left(config.workload.items);
  auto worker = [&](bool launches) {
    // suspend = true: an idle thread sleeps until a fiber is ready, rather than spinning.
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::shared_work>(true);
    if (launches) {
      for (int i = 0; i < config.workload.items; ++i) {
        boost::fibers::fiber([&, i] { RunItem(config, recorder, i, times, left); }).detach();
      }
    }
    left.Wait();  // runs ready fibers from the shared queue until the last item is parsed
  };
  std::vector<std::thread> threads;
  threads.emplace_back(worker, true);
  for (int w = 1; w < config.workers; ++w) threads.emplace_back(worker, false);
  for (auto& t : threads) t.join();
}

}  // namespace

PIPELINE_REGISTER_EXECUTOR("fibers", "a fiber per item on `workers` threads (Boost.Fiber shared_work); downloads park fibers",
                           kTakesWorkers | kHasModes, RunFibers);

}  // namespace pipeline
