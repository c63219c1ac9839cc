// The load generator's internals shared by its TCP and UDP drivers. Not a public interface.
#pragma once

#include <sys/epoll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "harness/histogram.h"
#include "scenarios/echo/load_generator.h"
#include "scenarios/echo/protocol.h"

namespace echo {

using Clock = std::chrono::steady_clock;

struct Connection {
  int fd = -1;
  uint64_t send_seq = 0;  // message being written
  size_t sent = 0;        // bytes of it written
  uint64_t recv_seq = 0;  // message whose reply is being read
  size_t received = 0;    // bytes of that reply read
  // When each message not yet answered was due: the send time in a closed loop, the scheduled time
  // in an open loop. Oldest first; front() belongs to recv_seq.
  std::deque<Clock::time_point> due;
  uint64_t completed = 0;  // inside the window
  bool want_write = false;
  bool broken = false;

  // Messages queued and not yet written whole. Never wraps: a reply completes only once its
  // message has been sent (see owed()).
  size_t unwritten() const { return due.size() - static_cast<size_t>(send_seq - recv_seq); }
  // Reply bytes the server may send now: the replies to the messages written whole, and to the
  // part of the one being written (its prefix with it), less what was read. Anything beyond is a
  // reply to nothing.
  uint64_t owed(const MessagePattern& p) const {
    return (send_seq - recv_seq) * p.reply_size() + (sent > 0 ? p.reply_mode().headroom() + sent : 0) - received;
  }
};

// The measurement window, opened and closed by the calling thread while the drivers run.
struct Window {
  std::atomic<int64_t> start_ns{INT64_MAX};  // steady-clock ns; INT64_MAX: not yet open
  std::atomic<int64_t> end_ns{INT64_MAX};
  std::atomic<uint64_t> answered{0};      // connections that have had at least one reply
  std::atomic<int64_t> last_reply_ns{0};  // when the latest reply of any connection came back

  void Replied(Clock::time_point now) { last_reply_ns.store(Ns(now), std::memory_order_relaxed); }

  static int64_t Ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  bool Inside(Clock::time_point t) const {
    const int64_t ns = Ns(t);
    return ns >= start_ns.load(std::memory_order_relaxed) && ns < end_ns.load(std::memory_order_relaxed);
  }
  bool Over(Clock::time_point t) const { return Ns(t) >= end_ns.load(std::memory_order_relaxed); }
};

// An open loop's schedule for one driver: its share of the rate, message j due at start + j / rate,
// dealt to its connections [begin, end) in turn.
class OpenLoopSchedule {
 public:
  OpenLoopSchedule(double total_rate, size_t total_connections, size_t begin, size_t end)
      : start_(Clock::now()),
        begin_(begin),
        count_(end - begin),
        rate_(total_rate * static_cast<double>(end - begin) / static_cast<double>(total_connections)) {}

  // Calls send(connection_index, due) for every message due by `now`; returns when the next is due.
  template <typename Send>
  Clock::time_point Release(Clock::time_point now, Send&& send) {
    while (true) {
      const auto due =
          start_ + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(released_) * 1e9 / rate_));
      if (due > now) return due;
      send(begin_ + released_ % count_, due);
      ++released_;
    }
  }

 private:
  const Clock::time_point start_;
  const size_t begin_, count_;
  const double rate_;
  uint64_t released_ = 0;
};

// One event loop driving conns[begin, end) until the window closes.
class Driver {
 public:
  virtual ~Driver() = default;
  virtual void Run() = 0;

  harness::Histogram latency;  // round trips completed inside the window
  // --work with two classes (WorkSpec::classes): the same round trips by class (short, long), and
  // each one's slowdown, its latency over its own work, in thousandths.
  std::vector<harness::Histogram> class_latency, class_slowdown;
  uint64_t wrong_bytes = 0;
  uint64_t unread_headers = 0;  // --work: header bytes that came back as sent (MessagePattern::Wrong)
  uint64_t lost = 0;            // UDP: messages due inside the window never answered in time
  uint64_t strays = 0;          // UDP: datagrams from another run (a reused port), ignored

 protected:
  // Waits on `ep` for events until `wake`, at most 10 ms so that the loop sees the window close or
  // the stop flag; returns what epoll_pwait2 does.
  static int WaitForEvents(int ep, epoll_event* events, int max, Clock::time_point now, Clock::time_point wake) {
    const auto wait = std::clamp(std::chrono::duration_cast<std::chrono::nanoseconds>(wake - now),
                                 std::chrono::nanoseconds(0), std::chrono::nanoseconds(std::chrono::milliseconds(10)));
    const timespec timeout{0, static_cast<long>(wait.count())};
    return epoll_pwait2(ep, events, max, &timeout, nullptr);
  }

  // A driver serves the connections conns[begin, end) of one load, counting into `window`.
  Driver(const LoadConfig& config, const MessagePattern& pattern, std::vector<Connection>& conns, size_t begin,
         size_t end, Window& window)
      : config_(config), pattern_(pattern), conns_(conns), begin_(begin), end_(end), window_(window) {}

  const LoadConfig& config_;
  const MessagePattern& pattern_;
  std::vector<Connection>& conns_;
  const size_t begin_, end_;
  Window& window_;
};

std::unique_ptr<Driver> MakeTcpDriver(const LoadConfig& config, const MessagePattern& pattern,
                                      std::vector<Connection>& conns, size_t begin, size_t end, Window& window);
std::unique_ptr<Driver> MakeUdpDriver(const LoadConfig& config, const MessagePattern& pattern,
                                      std::vector<Connection>& conns, size_t begin, size_t end, Window& window);

}  // namespace echo
