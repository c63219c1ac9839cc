// Submit a task, wait for its result (seeds 000-002: a pool saves creating a worker per task; a
// process pool pays for carrying the task and its result across the process boundary).
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <thread>
#include <vector>

#include "bazel/asio.h"
#include "scenarios/pipeline/futures.h"

namespace micro {
namespace {

// The pool the pipeline's thread_pool executor runs on (pipeline::ThreadPool, with its futures), so
// the primitive measured is the one the model uses.
void SubmitThreadPool(benchmark::State& state) {
  pipeline::ThreadPool pool(4);
  int64_t x = 0;
  for (auto _ : state) x += pipeline::Submit(pool, [i = x] { return i + 1; }).Result();
  benchmark::DoNotOptimize(x);
}
BENCHMARK(SubmitThreadPool)->Name("submit/thread_pool")->UseRealTime();

void SubmitAsioPost(benchmark::State& state) {
  boost::asio::io_context context(1);
  auto guard = boost::asio::make_work_guard(context);
  std::thread loop([&] { context.run(); });
  int64_t x = 0;
  for (auto _ : state) {
    std::promise<int64_t> result;
    boost::asio::post(context, [&result, i = x] { result.set_value(i + 1); });
    x += result.get_future().get();
  }
  guard.reset();
  loop.join();
  benchmark::DoNotOptimize(x);
}
BENCHMARK(SubmitAsioPost)->Name("submit/asio")->UseRealTime();

// A pool of 4 pre-forked processes: a task (an integer) goes down a shared pipe to whichever worker
// reads it first, its result comes back on a shared pipe. Each message is 8 bytes, atomic.
void SubmitProcessPool(benchmark::State& state) {
  int tasks[2], results[2];
  if (pipe(tasks) != 0 || pipe(results) != 0) {
    state.SkipWithError("pipe failed");
    return;
  }
  std::vector<pid_t> workers;
  for (int i = 0; i < 4; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      close(tasks[1]);
      close(results[0]);
      int64_t task;
      while (read(tasks[0], &task, sizeof task) == sizeof task) {
        const int64_t result = task + 1;
        if (write(results[1], &result, sizeof result) != sizeof result) break;
      }
      _exit(0);
    }
    workers.push_back(pid);
  }
  close(tasks[0]);
  close(results[1]);
  int64_t x = 0;
  for (auto _ : state) {
    int64_t result = 0;
    if (write(tasks[1], &x, sizeof x) != sizeof x || read(results[0], &result, sizeof result) != sizeof result) {
      state.SkipWithError("pipe round trip failed");
      break;
    }
    x = result;
  }
  close(tasks[1]);  // workers read EOF and exit
  for (pid_t pid : workers) waitpid(pid, nullptr, 0);
  close(results[0]);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(SubmitProcessPool)->Name("submit/process_pool")->UseRealTime();

// No pool: a thread created for the one task, as a pool would spare.
void SubmitNewThread(benchmark::State& state) {
  int64_t x = 0;
  for (auto _ : state) {
    std::thread t([&x] { ++x; });
    t.join();
  }
  benchmark::DoNotOptimize(x);
}
BENCHMARK(SubmitNewThread)->Name("submit/threads")->UseRealTime();

}  // namespace
}  // namespace micro
