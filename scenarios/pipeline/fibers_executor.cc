// `fibers`: a Boost.Fiber per item on `workers` threads sharing one ready queue. A download is
// this_fiber::sleep_for, which parks the fiber and holds no thread; the parse runs in the same fiber
// (coupled) or in a new fiber the download's fiber launches (decoupled), on whichever thread is
// free. The threads are the run's own, so no fiber scheduler outlives the run.
#include <boost/fiber/all.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "scenarios/pipeline/executor.h"

namespace pipeline {
namespace {

class SharedQueueScheduler;

// The ready queue the run's threads share, and the threads asleep waiting for work.
struct SharedQueue {
  std::mutex mutex;
  std::deque<boost::fibers::context*> fibers;  // guarded by mutex
  std::vector<SharedQueueScheduler*> idle;     // guarded by mutex
};

// Boost's shared_work, except that a fiber made ready wakes one idle thread: Boost 1.74's
// shared_work only queues it, so a thread asleep in suspend_until with no timer of its own sleeps
// on while work waits (measured: 2 workers ran at the speed of 1). Exactly one sleeper is woken,
// through its own condition variable: with one shared one, 64 threads woke for every fiber.
// Pinned fibers (each thread's main and dispatcher) stay on their thread.
class SharedQueueScheduler final : public boost::fibers::algo::algorithm {
 public:
  explicit SharedQueueScheduler(SharedQueue& shared) : shared_(shared) {}

  void awakened(boost::fibers::context* ctx) noexcept override {
    if (ctx->is_context(boost::fibers::type::pinned_context)) {
      local_.push_back(*ctx);
      return;
    }
    ctx->detach();
    std::lock_guard<std::mutex> lock(shared_.mutex);
    shared_.fibers.push_back(ctx);
    if (!shared_.idle.empty()) {
      shared_.idle.back()->WakeLocked();
      shared_.idle.pop_back();
    }
  }

  boost::fibers::context* pick_next() noexcept override {
    {
      std::lock_guard<std::mutex> lock(shared_.mutex);
      if (!shared_.fibers.empty()) {
        boost::fibers::context* ctx = shared_.fibers.front();
        shared_.fibers.pop_front();
        boost::fibers::context::active()->attach(ctx);
        return ctx;
      }
    }
    if (local_.empty()) return nullptr;
    boost::fibers::context* ctx = &local_.front();
    local_.pop_front();
    return ctx;
  }

  bool has_ready_fibers() const noexcept override {
    std::lock_guard<std::mutex> lock(shared_.mutex);
    return !shared_.fibers.empty() || !local_.empty();
  }

  void suspend_until(const std::chrono::steady_clock::time_point& until) noexcept override {
    std::unique_lock<std::mutex> lock(shared_.mutex);
    if (!woken_ && shared_.fibers.empty()) {
      shared_.idle.push_back(this);
      const auto woken = [this] { return woken_; };
      if (until == std::chrono::steady_clock::time_point::max()) {
        wake_.wait(lock, woken);
      } else {
        wake_.wait_until(lock, until, woken);  // a parked fiber's timer is due
      }
      auto self = std::find(shared_.idle.begin(), shared_.idle.end(), this);
      if (self != shared_.idle.end()) shared_.idle.erase(self);
    }
    woken_ = false;
  }

  // A fiber of this thread was made ready by another thread.
  void notify() noexcept override {
    std::lock_guard<std::mutex> lock(shared_.mutex);
    WakeLocked();
  }

  void WakeLocked() {  // requires shared_.mutex
    woken_ = true;
    wake_.notify_one();
  }

 private:
  SharedQueue& shared_;
  boost::fibers::scheduler::ready_queue_type local_;
  std::condition_variable wake_;  // waits on shared_.mutex
  bool woken_ = false;            // guarded by shared_.mutex
};

// Counts finished items; the threads leave when every item is parsed. Only the last item takes the
// fiber mutex: Boost.Fiber's mutex spins, and 64 threads on 2 cores spinning for it on every item
// burned both cores (measured: 0.7 s for a 0.07 s workload).
class Countdown {
 public:
  explicit Countdown(int count) : count_(count) {}
  void Done() {
    if (count_.fetch_sub(1) != 1) return;
    std::unique_lock<boost::fibers::mutex> lock(mutex_);
    finished_.notify_all();
  }
  void Wait() {
    std::unique_lock<boost::fibers::mutex> lock(mutex_);
    finished_.wait(lock, [this] { return count_.load() == 0; });
  }

 private:
  std::atomic<int> count_;
  boost::fibers::mutex mutex_;
  boost::fibers::condition_variable finished_;
};

// 64 KiB is plenty for a download and a parse, and stays below malloc's mmap threshold: Boost's
// default 128 KiB stack cost an mmap and munmap per fiber (100 fibers took 6 ms to start).
boost::fibers::fixedsize_stack Stack() { return boost::fibers::fixedsize_stack(64 * 1024); }

void RunItem(const RunConfig& config, Recorder& recorder, int item, std::vector<ItemTimes>& times, Countdown& left) {
  ItemTimes& t = times[item];
  t.download_start = recorder.Now();
  boost::this_fiber::sleep_for(config.downloads[item]);
  t.download_end = recorder.Now();
  if (config.decoupled) {
    boost::fibers::fiber(std::allocator_arg, Stack(), [&, item] {
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
  SharedQueue shared;
  auto worker = [&](bool launches) {
    boost::fibers::use_scheduling_algorithm<SharedQueueScheduler>(shared);
    if (launches) {
      for (int i = 0; i < config.workload.items; ++i) {
        auto item = [&, i] { RunItem(config, recorder, i, times, left); };
        boost::fibers::fiber(std::allocator_arg, Stack(), std::move(item)).detach();
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

HARNESS_REGISTER(ExecutorEntry, {"fibers",
                                 "a fiber per item on `workers` threads sharing a ready queue (Boost.Fiber); "
                                 "downloads park fibers",
                                 kTakesWorkers | kHasModes, RunFibers});

}  // namespace pipeline
