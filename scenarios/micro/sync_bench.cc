// Locks and queues (seed 004: "a lock serialises", "a process queue costs more than a thread
// queue").
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace micro {
namespace {

// An uncontended lock in a concurrent program: the process has had a second thread first. glibc on
// x86 skips the lock prefix while a process has never had one (here 3.7 ns a lock/unlock in a fresh
// single-threaded process, 13 ns once any thread was created): that is not the cost a program with
// threads pays, and it was what this benchmark measured alone in a fresh process.
void MutexUncontended(benchmark::State& state) {
  std::thread([] {}).join();
  std::mutex mu;
  int64_t counter = 0;
  for (auto _ : state) {
    std::lock_guard lock(mu);
    ++counter;
  }
  benchmark::DoNotOptimize(counter);
}
BENCHMARK(MutexUncontended)->Name("mutex/uncontended");

// Every benchmark thread increments one shared counter under one lock.
std::mutex shared_mu;
int64_t shared_counter = 0;

void MutexContended(benchmark::State& state) {
  for (auto _ : state) {
    std::lock_guard lock(shared_mu);
    ++shared_counter;
  }
}
BENCHMARK(MutexContended)->Name("mutex/contended")->Threads(2)->Threads(4)->UseRealTime();

// A producer thread feeds a locked queue (bounded at 1024); the benchmark thread takes one item
// per iteration.
void QueueThreads(benchmark::State& state) {
  std::mutex mu;
  std::condition_variable not_empty, not_full;
  std::deque<int64_t> queue;
  bool done = false;
  std::thread producer([&] {
    for (int64_t i = 0;; ++i) {
      std::unique_lock lock(mu);
      not_full.wait(lock, [&] { return done || queue.size() < 1024; });
      if (done) return;
      queue.push_back(i);
      not_empty.notify_one();
    }
  });
  int64_t sum = 0;
  for (auto _ : state) {
    std::unique_lock lock(mu);
    not_empty.wait(lock, [&] { return !queue.empty(); });
    sum += queue.front();
    queue.pop_front();
    not_full.notify_one();
  }
  {
    std::lock_guard lock(mu);
    done = true;
  }
  not_full.notify_all();
  producer.join();
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(QueueThreads)->Name("queue/threads")->UseRealTime();

// A producer process writes 8-byte items into a pipe; the benchmark process reads one per
// iteration: the queue between processes that multiprocessing.Queue is built on.
void QueueProcesses(benchmark::State& state) {
  int fds[2];
  if (pipe(fds) != 0) {
    state.SkipWithError("pipe failed");
    return;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    for (int64_t i = 0; write(fds[1], &i, sizeof i) == sizeof i; ++i) {
    }
    _exit(0);
  }
  close(fds[1]);
  int64_t sum = 0, item = 0;
  for (auto _ : state) {
    if (read(fds[0], &item, sizeof item) != sizeof item) {
      state.SkipWithError("pipe read failed");
      break;
    }
    sum += item;
  }
  close(fds[0]);  // the producer's next write fails with EPIPE and it exits
  waitpid(pid, nullptr, 0);
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(QueueProcesses)->Name("queue/processes")->UseRealTime();

}  // namespace
}  // namespace micro
