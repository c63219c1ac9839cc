#include "scenarios/echo/load_driver.h"

#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace echo {
namespace {

int64_t NsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
}

}  // namespace

void Driver::SetTimerSlack() { prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); }

void Driver::OwnFileTable() const {
  if (unshare(CLONE_FILES) != 0) return;  // refused: the shared table only costs more
  std::vector<unsigned> keep;
  for (size_t i = begin_; i < end_; ++i) keep.push_back(static_cast<unsigned>(conns_[i].fd));
  std::sort(keep.begin(), keep.end());
  unsigned from = 3;
  for (const unsigned fd : keep) {
    if (fd > from) close_range(from, fd - 1, 0);
    from = std::max(from, fd + 1);
  }
  close_range(from, ~0U, 0);
}

int Driver::WaitForEvents(int ep, epoll_event* events, int max, Clock::time_point now, Clock::time_point wake) {
  const auto until = std::chrono::duration_cast<std::chrono::nanoseconds>(wake - now);
  const bool poll = until <= window_.wake_slack;
  const auto wait = poll
                        ? std::chrono::nanoseconds(0)
                        : std::min<std::chrono::nanoseconds>(until - window_.wake_slack, std::chrono::milliseconds(10));
  const timespec timeout{0, static_cast<long>(wait.count())};
  const int n = epoll_pwait2(ep, events, max, &timeout, nullptr);
  if (poll && n == 0) {
    // Where the server or another driver may share this CPU (`load` unpinned, --cpus=shared), it
    // runs now if it is ready: a load generator that polled without yielding took a whole CPU from
    // the fake server of capacity_test, which then fell behind at 60% of its capacity. A yield
    // that was back at once is polling too; one that took longer let others run, and their time
    // is not the load generator's (LoadConfig::yield_when_polling says why it is not always made).
    constexpr int64_t kNothingElseRanNs = 5'000;
    const auto polled = Clock::now();
    int64_t yielded = 0;
    if (config_.yield_when_polling) {
      sched_yield();
      yielded = NsBetween(polled, Clock::now());
    }
    if (window_.Inside(now)) poll_ns += NsBetween(now, polled) + (yielded < kNothingElseRanNs ? yielded : 0);
  }
  return n;
}

void Driver::Sending(Clock::time_point now, Clock::time_point due) {
  if (!window_.Inside(due)) return;
  ++scheduled;
  send_lateness.Record(static_cast<uint64_t>(std::max<int64_t>(0, NsBetween(due, now))));
  if (last_send_ != Clock::time_point{}) {
    gaps.Add(static_cast<double>(NsBetween(last_send_, now)));
    due_gaps.Add(static_cast<double>(NsBetween(last_due_, due)));
  }
  last_send_ = now;
  last_due_ = due;
}

int64_t Driver::Completed(Clock::time_point now, Clock::time_point due) {
  window_.Replied(now);
  if (!window_.Inside(now)) return -1;
  const int64_t ns = std::max<int64_t>(0, NsBetween(due, now));
  latency.Record(static_cast<uint64_t>(ns));
  intervals.Record(NsBetween(Window::At(window_.start_ns.load(std::memory_order_relaxed)), now),
                   static_cast<uint64_t>(ns));
  return ns;
}

}  // namespace echo
