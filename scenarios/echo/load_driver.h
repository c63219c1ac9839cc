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
#include "scenarios/echo/arrivals.h"
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

// The load's timeline, set by the calling thread while the drivers run: when the load proper
// begins (after the start barrier), and the measurement window.
struct Window {
  std::atomic<int64_t> go_ns{INT64_MAX};     // steady-clock ns; INT64_MAX: still at the barrier
  std::atomic<int64_t> start_ns{INT64_MAX};  // INT64_MAX: not yet open
  std::atomic<int64_t> end_ns{INT64_MAX};
  std::atomic<int64_t> stop_ns{INT64_MAX};  // when the drivers stop: after the readings that follow the window
  std::atomic<uint64_t> answered{0};        // connections that have had at least one reply
  std::atomic<int64_t> last_reply_ns{0};    // when the latest reply of any connection came back
  // How late this machine wakes a thread that sleeps (measured at the load's start): a send due
  // sooner than this is waited for by polling, not sleeping.
  std::chrono::nanoseconds wake_slack{0};

  void Replied(Clock::time_point now) { last_reply_ns.store(Ns(now), std::memory_order_relaxed); }

  static int64_t Ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  static Clock::time_point At(int64_t ns) { return Clock::time_point(std::chrono::nanoseconds(ns)); }
  bool Gone(Clock::time_point t) const { return Ns(t) >= go_ns.load(std::memory_order_relaxed); }
  bool Inside(Clock::time_point t) const {
    const int64_t ns = Ns(t);
    return ns >= start_ns.load(std::memory_order_relaxed) && ns < end_ns.load(std::memory_order_relaxed);
  }
  bool Over(Clock::time_point t) const { return Ns(t) >= stop_ns.load(std::memory_order_relaxed); }
};

// An open loop's schedule for one driver: its share of the rate, the gaps drawn by the arrival
// process from the time the load begins, the messages dealt to its connections [begin, end) in turn.
class OpenLoopSchedule {
 public:
  OpenLoopSchedule(const LoadConfig& config, size_t total_connections, size_t begin, size_t end)
      : begin_(begin),
        count_(end - begin),
        process_(config.arrivals,
                 config.rate * static_cast<double>(end - begin) / static_cast<double>(total_connections),
                 config.seed * 1'000'003 + begin) {}

  void Start(Clock::time_point at) {
    start_ = at;
    next_ = Due();
  }

  // Calls send(connection_index, due) for every message due by `now`; returns when the next is due.
  template <typename Send>
  Clock::time_point Release(Clock::time_point now, Send&& send) {
    while (next_ <= now) {
      send(begin_ + released_ % count_, next_);
      ++released_;
      next_ = Due();
    }
    return next_;
  }

 private:
  Clock::time_point Due() { return start_ + std::chrono::nanoseconds(static_cast<int64_t>(process_.NextOffsetNs())); }

  const size_t begin_, count_;
  ArrivalProcess process_;
  Clock::time_point start_, next_ = Clock::time_point::max();
  uint64_t released_ = 0;
};

// One event loop driving conns[begin, end) until the window closes.
class Driver {
 public:
  virtual ~Driver() = default;
  virtual void Run() = 0;

  harness::Histogram latency;  // round trips completed inside the window
  Intervals intervals;         // the same, by 100 ms of the window
  // --work with two classes (WorkSpec::classes): the same round trips by class (short, long), and
  // each one's slowdown, its latency over its own work, in thousandths.
  std::vector<harness::Histogram> class_latency, class_slowdown;
  // Open loop, the messages due inside the window: how late each left against its schedule (ns),
  // the gaps between consecutive sends and between their due times (the schedule's own, drawn from
  // the same numbers: what the sends' gaps would be had each left on time), and how many there were.
  harness::Histogram send_lateness;
  GapStats gaps, due_gaps;
  uint64_t scheduled = 0;
  int64_t poll_ns = 0;  // inside the window, polling for a send due sooner than a wake-up takes
  uint64_t wrong_bytes = 0;
  uint64_t unread_headers = 0;  // --work: header bytes that came back as sent (MessagePattern::Wrong)
  uint64_t lost = 0;            // UDP: messages due inside the window never answered in time
  uint64_t strays = 0;          // UDP: datagrams from another run (a reused port), ignored

 protected:
  // A driver serves the connections conns[begin, end) of one load, counting into `window`.
  Driver(const LoadConfig& config, const MessagePattern& pattern, std::vector<Connection>& conns, size_t begin,
         size_t end, Window& window)
      : config_(config),
        pattern_(pattern),
        conns_(conns),
        begin_(begin),
        end_(end),
        window_(window),
        schedule_(config, conns.size(), begin, end) {
    intervals.Reserve(std::chrono::duration_cast<std::chrono::nanoseconds>(config.duration).count());
  }

  // Sleeps are as short as asked (the default timer slack adds 50 us to each).
  static void SetTimerSlack();
  // Gives the calling driver thread a file table of its own (unshare CLONE_FILES) holding only its
  // connections (and descriptors 0-2). A table that threads share makes every system call on a
  // descriptor take and drop a reference to its file (fdget's slow path); alone in its table a
  // thread skips that, as a single-threaded client does. At 100 connections its effect was within
  // this VM's noise (docs/capacity.md, "The load generator's own cost"). Nothing else is kept, so
  // that the thread holds no one's file open: a server in the same process (the tests') closing a
  // connection still ends it at once. The table goes when the thread ends; the drivers are joined
  // before their connections are closed.
  void OwnFileTable() const;

  // Waits on `ep` for events until `wake`, at most 10 ms so that the loop sees the window close or
  // the stop flag; returns what epoll_pwait2 does. A wake due sooner than the machine's wake-up
  // latency is waited for by polling, and the time that takes inside the window is kept apart
  // (poll_ns): it is the load generator waiting, not working.
  int WaitForEvents(int ep, epoll_event* events, int max, Clock::time_point now, Clock::time_point wake);

  // Sends through `send(index, due)` what is due at `now`, and returns when the next send is due
  // (never: a closed loop, whose next message goes when a reply comes, or a load not yet begun).
  // The load begins once the calling thread has let it (the start barrier is over): an open loop's
  // schedule starts at that moment, a closed loop fills every connection to its depth. Each open-loop
  // send is recorded: its lateness, and its gap from the previous one.
  template <typename Send>
  Clock::time_point Release(Clock::time_point now, Send&& send) {
    if (!going_ && window_.Gone(now)) Begin(now, send);
    if (!going_ || config_.rate == 0) return Clock::time_point::max();
    return schedule_.Release(now, [&](size_t index, Clock::time_point due) {
      Sending(now, due);
      send(index, due);
    });
  }
  // Between the events of one wake-up: sends what fell due while they were handled (an open
  // loop's send does not wait behind a batch of replies), `next` being when the next is due.
  template <typename Send>
  void ReleaseDue(Clock::time_point& next, Send&& send) {
    if (next == Clock::time_point::max()) return;  // a closed loop: no clock read
    if (const auto now = Clock::now(); next <= now) next = Release(now, send);
  }
  virtual size_t InFlight(size_t index) const = 0;

  // A round trip of a message due at `due` completed at `now`: recorded if inside the window.
  // Returns its latency in ns, or -1 outside the window.
  int64_t Completed(Clock::time_point now, Clock::time_point due);

  const LoadConfig& config_;
  const MessagePattern& pattern_;
  std::vector<Connection>& conns_;
  const size_t begin_, end_;
  Window& window_;
  OpenLoopSchedule schedule_;
  bool going_ = false;
  Clock::time_point last_send_{}, last_due_{};  // of a message due inside the window

 private:
  template <typename Send>
  void Begin(Clock::time_point now, Send& send) {
    going_ = true;
    if (config_.rate > 0) {
      schedule_.Start(Window::At(window_.go_ns.load()));
      return;
    }
    for (size_t i = begin_; i < end_; ++i) {
      for (size_t k = InFlight(i); k < static_cast<size_t>(config_.depth); ++k) send(i, now);
    }
  }
  // A message due at `due` is sent at `now`: its lateness and its gap from the previous send.
  void Sending(Clock::time_point now, Clock::time_point due);
};

std::unique_ptr<Driver> MakeTcpDriver(const LoadConfig& config, const MessagePattern& pattern,
                                      std::vector<Connection>& conns, size_t begin, size_t end, Window& window);
std::unique_ptr<Driver> MakeUdpDriver(const LoadConfig& config, const MessagePattern& pattern,
                                      std::vector<Connection>& conns, size_t begin, size_t end, Window& window);

}  // namespace echo
