#include "scenarios/pipeline/futures.h"

namespace pipeline {

ThreadPool::ThreadPool(int workers) {
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
}

void ThreadPool::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (shut_) throw std::runtime_error("ThreadPool: Post after Shutdown");
    queue_.push_back(std::move(task));
  }
  ready_.notify_one();
}

void ThreadPool::Shutdown(bool wait) {
  {
    std::unique_lock lock(mu_);
    if (wait) {
      // Tasks may post more tasks (a done-callback submitting the parse): wait until none is left.
      idle_.wait(lock, [this] { return queue_.empty() && running_ == 0; });
    } else {
      queue_.clear();
    }
    shut_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void ThreadPool::Work() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      ready_.wait(lock, [this] { return shut_ || !queue_.empty(); });
      if (queue_.empty()) return;  // shut down and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    task();
    {
      std::lock_guard lock(mu_);
      --running_;
    }
    idle_.notify_all();
  }
}

void ThreadPerTask::Post(std::function<void()> task) {
  std::lock_guard lock(mu_);
  if (shut_) throw std::runtime_error("ThreadPerTask: Post after Shutdown");
  threads_.emplace_back(std::move(task));
}

void ThreadPerTask::Shutdown(bool) {
  // A task may post another (its done-callback): join until no thread is left.
  while (true) {
    std::list<std::thread> batch;
    {
      std::lock_guard lock(mu_);
      if (threads_.empty()) {
        shut_ = true;
        return;
      }
      batch.swap(threads_);
    }
    for (auto& t : batch) t.join();
  }
}

}  // namespace pipeline
