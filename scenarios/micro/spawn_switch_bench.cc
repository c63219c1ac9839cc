// What it costs to create a worker and to switch between two (seeds 003 and 004: "a thread is
// cheaper than a process", "a coroutine is cheaper than a thread").
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/fiber/all.hpp>
#include <semaphore>
#include <thread>

namespace micro {
namespace {

void SpawnThread(benchmark::State& state) {
  for (auto _ : state) {
    std::thread t([] {});
    t.join();
  }
}
BENCHMARK(SpawnThread)->Name("spawn/threads");

void SpawnProcess(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      state.SkipWithError("fork failed");
      break;
    }
    waitpid(pid, nullptr, 0);
  }
}
BENCHMARK(SpawnProcess)->Name("spawn/processes")->UseRealTime();  // the child's CPU is not ours

void SpawnFiber(benchmark::State& state) {
  for (auto _ : state) {
    boost::fibers::fiber f([] {});
    f.join();
  }
}
BENCHMARK(SpawnFiber)->Name("spawn/fibers");

// Ping-pong between two threads: one iteration is a round trip, two switches.
void SwitchThreads(benchmark::State& state) {
  std::binary_semaphore ping(0), pong(0);
  bool done = false;
  std::thread other([&] {
    while (true) {
      ping.acquire();
      if (done) return;
      pong.release();
    }
  });
  for (auto _ : state) {
    ping.release();
    pong.acquire();
  }
  done = true;
  ping.release();
  other.join();
}
BENCHMARK(SwitchThreads)->Name("switch/threads")->UseRealTime();

// Two fibers on one thread yielding to each other: one iteration is two switches.
void SwitchFibers(benchmark::State& state) {
  bool done = false;
  boost::fibers::fiber other([&] {
    while (!done) boost::this_fiber::yield();
  });
  for (auto _ : state) boost::this_fiber::yield();
  done = true;
  other.join();
}
BENCHMARK(SwitchFibers)->Name("switch/fibers");

// Ping-pong between two processes over a pair of pipes: one iteration is a round trip.
void SwitchProcesses(benchmark::State& state) {
  int to_child[2], to_parent[2];
  if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
    state.SkipWithError("pipe failed");
    return;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(to_child[1]);  // or the child would hold its own pipe open and never see EOF
    close(to_parent[0]);
    char byte;
    while (read(to_child[0], &byte, 1) == 1 && write(to_parent[1], &byte, 1) == 1) {
    }
    _exit(0);
  }
  char byte = 'x';
  for (auto _ : state) {
    if (write(to_child[1], &byte, 1) != 1 || read(to_parent[0], &byte, 1) != 1) {
      state.SkipWithError("pipe round trip failed");
      break;
    }
  }
  close(to_child[1]);  // the child reads EOF and exits
  waitpid(pid, nullptr, 0);
  for (int fd : {to_child[0], to_parent[0], to_parent[1]}) close(fd);
}
BENCHMARK(SwitchProcesses)->Name("switch/processes")->UseRealTime();

// The same pipe ping-pong between two threads of one process: like for like with the processes.
void SwitchThreadsOverPipe(benchmark::State& state) {
  int to_other[2], to_main[2];
  if (pipe(to_other) != 0 || pipe(to_main) != 0) {
    state.SkipWithError("pipe failed");
    return;
  }
  std::thread other([&] {
    char byte;
    while (read(to_other[0], &byte, 1) == 1 && write(to_main[1], &byte, 1) == 1) {
    }
  });
  char byte = 'x';
  for (auto _ : state) {
    if (write(to_other[1], &byte, 1) != 1 || read(to_main[0], &byte, 1) != 1) {
      state.SkipWithError("pipe round trip failed");
      break;
    }
  }
  close(to_other[1]);  // the other thread reads EOF and returns
  other.join();
  for (int fd : {to_other[0], to_main[0], to_main[1]}) close(fd);
}
BENCHMARK(SwitchThreadsOverPipe)->Name("switch/threads_pipe")->UseRealTime();

}  // namespace
}  // namespace micro
