// `coalesce`'s gate: whether an io_uring loop has been busy enough for its sleeps to wait for a batch.
#pragma once

#include <chrono>
#include <cstdint>

namespace echo::uring {

// Busy: the loop's own CPU was more than kBusyFrom of the last kBusyWindow, and stays so until under
// kBusyUntil. Its own: its thread's CPU time less what requests' --work burned. The batch wait saves
// the loop's own wake-ups; a loop whose CPU goes to its requests saves none by batching, and its
// sleep would hold a request that has arrived while the CPU idles (with --work=cpu:exp:20us at
// 20,000-23,000 msgs/s, batching every sleep took 2.2-2.9x multishot's mean round trip, at the same
// CPU a message).
inline constexpr auto kBusyWindow = std::chrono::milliseconds(10);
inline constexpr double kBusyFrom = 0.85;
inline constexpr double kBusyUntil = 0.6;

class BusyGate {
 public:
  // Whether a new reading is due at `now_ns` (steady clock): once a window has passed since the last.
  bool Due(int64_t now_ns) const { return now_ns - start_ns_ >= std::chrono::nanoseconds(kBusyWindow).count(); }

  // A reading at `now_ns`: the thread's CPU time so far and what requests' work burned of it so far
  // (ns). Judges the window since the last reading; returns whether the loop is busy.
  bool Update(int64_t now_ns, int64_t thread_cpu_ns, int64_t work_cpu_ns) {
    const int64_t own = thread_cpu_ns - work_cpu_ns;
    const double share = static_cast<double>(own - own_ns_) / static_cast<double>(now_ns - start_ns_);
    busy_ = share > (busy_ ? kBusyUntil : kBusyFrom);
    start_ns_ = now_ns;
    own_ns_ = own;
    return busy_;
  }

  bool busy() const { return busy_; }

 private:
  bool busy_ = false;
  int64_t start_ns_ = 0;  // when the window began
  int64_t own_ns_ = 0;    // the loop's own CPU then
};

}  // namespace echo::uring
