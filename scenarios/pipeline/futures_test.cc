#include "scenarios/pipeline/futures.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>

namespace pipeline {
namespace {

using namespace std::chrono_literals;

TEST(FuturesTest, SubmitAndResult) {
  ThreadPool pool(2);
  auto f = Submit(pool, [] { return 6 * 7; });
  EXPECT_EQ(f.Result(), 42);
  EXPECT_TRUE(f.Done());
}

TEST(FuturesTest, ExceptionsReachResult) {
  ThreadPool pool(1);
  auto f = Submit(pool, []() -> int { throw std::runtime_error("page not found"); });
  EXPECT_THROW(
      {
        try {
          f.Result();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "page not found");
          throw;
        }
      },
      std::runtime_error);
}

TEST(FuturesTest, CallbacksRunOnceBeforeAndAfterCompletion) {
  ThreadPool pool(2);
  std::atomic<int> before{0}, after{0};
  auto f = Submit(pool, [] {
    std::this_thread::sleep_for(50ms);
    return 1;
  });
  f.AddDoneCallback([&](const Future<int>& done) { before += done.Result(); });
  f.Result();
  f.AddDoneCallback([&](const Future<int>& done) { after += done.Result(); });  // already done: runs now
  EXPECT_EQ(after.load(), 1);
  pool.Shutdown(true);
  EXPECT_EQ(before.load(), 1);
}

TEST(FuturesTest, ShutdownWaitWaitsForTasksAndTheTasksTheyPost) {
  ThreadPool pool(2);
  std::atomic<int> done{0};
  for (int i = 0; i < 10; ++i) {
    Submit(pool, [&] {
      std::this_thread::sleep_for(10ms);
      return 0;
    }).AddDoneCallback([&](const Future<int>&) {
      Submit(pool, [&] {
        std::this_thread::sleep_for(5ms);
        return ++done;
      });
    });
  }
  pool.Shutdown(true);
  EXPECT_EQ(done.load(), 10);
  EXPECT_THROW(pool.Post([] {}), std::runtime_error);
}

TEST(FuturesTest, ShutdownWithoutWaitDropsQueuedTasks) {
  ThreadPool pool(1);
  std::atomic<int> ran{0};
  for (int i = 0; i < 20; ++i) {
    Submit(pool, [&] {
      std::this_thread::sleep_for(20ms);
      return ++ran;
    });
  }
  pool.Shutdown(false);
  EXPECT_LT(ran.load(), 20);
}

TEST(FuturesTest, MapKeepsTheOrderOfItsInputs) {
  ThreadPool pool(4);
  const std::vector<int> items = {5, 1, 4, 2, 3};
  const auto squares = Map(
      pool,
      [](const int& x) {
        std::this_thread::sleep_for(std::chrono::milliseconds(x));
        return x * x;
      },
      items);
  EXPECT_EQ(squares, (std::vector<int>{25, 1, 16, 4, 9}));
}

TEST(FuturesTest, ThreadPerTaskJoinsEveryThread) {
  std::atomic<int> ran{0};
  {
    ThreadPerTask executor;
    for (int i = 0; i < 8; ++i) {
      Submit(executor, [&] { return ++ran; }).AddDoneCallback([&](const Future<int>&) {
        Submit(executor, [&] { return ++ran; });
      });
    }
    executor.Shutdown(true);
  }
  EXPECT_EQ(ran.load(), 16);
}

}  // namespace
}  // namespace pipeline
