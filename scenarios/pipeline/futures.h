// The C++ face of Python's concurrent.futures, which seed 002 uses: an Executor runs tasks;
// Submit() returns a Future with Result() (waits; rethrows the task's exception) and
// AddDoneCallback() (runs once: at once if the future is done, else in the thread that completes
// it); Map() returns results in the order of the inputs; Shutdown(wait) is shutdown(wait=...).
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

namespace pipeline {

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs task some time later. Throws std::runtime_error after Shutdown().
  virtual void Post(std::function<void()> task) = 0;
  // wait = true: returns once every task posted has run. wait = false: tasks not yet started are
  // dropped, and it returns once the running ones have finished.
  virtual void Shutdown(bool wait) = 0;
};

template <typename T>
class Future {
 public:
  T Result() const {
    std::unique_lock lock(state_->mu);
    state_->done_cv.wait(lock, [&] { return state_->done; });
    if (state_->error) std::rethrow_exception(state_->error);
    return *state_->value;
  }

  bool Done() const {
    std::lock_guard lock(state_->mu);
    return state_->done;
  }

  void AddDoneCallback(std::function<void(const Future&)> callback) const {
    {
      std::lock_guard lock(state_->mu);
      if (!state_->done) {
        state_->callbacks.push_back(std::move(callback));
        return;
      }
    }
    callback(*this);
  }

 private:
  template <typename F>
  friend auto Submit(Executor& executor, F fn) -> Future<std::invoke_result_t<F>>;

  struct State {
    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;                                          // guarded by mu
    std::optional<T> value;                                     // guarded by mu
    std::exception_ptr error;                                   // guarded by mu
    std::vector<std::function<void(const Future&)>> callbacks;  // guarded by mu
  };

  Future() : state_(std::make_shared<State>()) {}

  void Complete(std::optional<T> value, std::exception_ptr error) const {
    std::vector<std::function<void(const Future&)>> callbacks;
    {
      std::lock_guard lock(state_->mu);
      state_->value = std::move(value);
      state_->error = error;
      state_->done = true;
      callbacks.swap(state_->callbacks);
    }
    state_->done_cv.notify_all();
    for (auto& callback : callbacks) callback(*this);  // outside the lock: a callback may Submit
  }

  std::shared_ptr<State> state_;
};

template <typename F>
auto Submit(Executor& executor, F fn) -> Future<std::invoke_result_t<F>> {
  using T = std::invoke_result_t<F>;
  Future<T> future;
  executor.Post([future, fn = std::move(fn)]() mutable {
    try {
      future.Complete(fn(), nullptr);
    } catch (...) {
      future.Complete(std::nullopt, std::current_exception());
    }
  });
  return future;
}

// Submits fn(item) for every item and returns the results in the order of the items.
template <typename F, typename T>
auto Map(Executor& executor, F fn, const std::vector<T>& items) -> std::vector<std::invoke_result_t<F, const T&>> {
  std::vector<Future<std::invoke_result_t<F, const T&>>> futures;
  for (const T& item : items) futures.push_back(Submit(executor, [fn, &item] { return fn(item); }));
  std::vector<std::invoke_result_t<F, const T&>> results;
  for (auto& f : futures) results.push_back(f.Result());
  return results;
}

// A bounded pool of `workers` threads taking tasks from one queue (ThreadPoolExecutor).
class ThreadPool final : public Executor {
 public:
  explicit ThreadPool(int workers);
  ~ThreadPool() override { Shutdown(true); }
  void Post(std::function<void()> task) override;
  void Shutdown(bool wait) override;

 private:
  void Work();
  std::mutex mu_;
  std::condition_variable ready_;
  std::condition_variable idle_;
  bool shut_ = false;                        // guarded by mu_
  int running_ = 0;                          // guarded by mu_
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  std::vector<std::thread> threads_;
};

// A new thread per task, every one joined by Shutdown (no bound: the `threads` model).
class ThreadPerTask final : public Executor {
 public:
  ~ThreadPerTask() override { Shutdown(true); }
  void Post(std::function<void()> task) override;
  void Shutdown(bool wait) override;

 private:
  std::mutex mu_;
  bool shut_ = false;               // guarded by mu_
  std::list<std::thread> threads_;  // guarded by mu_
};

}  // namespace pipeline
