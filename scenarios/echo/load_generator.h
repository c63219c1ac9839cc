// The echo load generator: closed or open loop, every byte checked.
//
// Opens `connections` TCP connections (non-blocking connects, a bounded number in flight, so a burst
// of 10k does not overflow the server's accept backlog), then each of `threads` epoll loops drives
// its share: send a message, read until all `size` bytes are back, check every byte, record the
// round trip, send the next. Only round trips that complete inside the measurement window (after
// warm-up) are counted. Every loop is bounded by the window's end and stops by itself; a connection
// that never gets a reply is counted as starved, never waited for past the warm-up's bound.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness/histogram.h"
#include "harness/params.h"
#include "scenarios/echo/arrivals.h"
#include "scenarios/echo/protocol.h"
#include "scenarios/echo/work.h"

namespace echo {

struct LoadConfig {
  harness::Endpoint target;
  int connections = 1;
  size_t size = 64;
  // The window opens after `warmup` and once every connection has had a reply (the steady state),
  // waiting at most `max_extra_warmup` more, no longer than 500 ms without a new connection
  // answered once answers have begun (a pool that starves connections by design), and no longer
  // than 5 s for the first answer.
  harness::Duration warmup = std::chrono::milliseconds(200);
  harness::Duration max_extra_warmup = std::chrono::seconds(30);
  harness::Duration duration = std::chrono::seconds(1);
  int threads = 1;
  ReplyMode reply;  // what the server must send back (--reply); every byte checked against it
  WorkSpec work;    // what each request costs the server (--work, TCP): carried in its header
  // 0: closed loop (each connection sends its next message when the reply is back). Otherwise an
  // open loop: `rate` messages per second in all, on a fixed schedule over the connections, with
  // latency measured from each message's scheduled time, so a slow server cannot hide its delay
  // by slowing the client (no coordinated omission).
  double rate = 0;
  // The open loop's gaps between messages (arrivals.h): exponential (Poisson) or all alike, drawn
  // from `seed` (0: one drawn for this load, recorded in its result).
  Arrivals arrivals = Arrivals::kPoisson;
  uint64_t seed = 0;
  // A closed loop's messages in flight per connection (mutilate's depth): the next is sent as each
  // reply comes back.
  int depth = 1;
  // Before the load begins, every connection sends one message and waits for its reply, and the
  // load begins when all are answered (or, as in the warm-up, when answers stop coming), so that
  // the first connections do not load the server while the rest wait to be accepted. False: each
  // connection starts at once (the ramp).
  bool barrier = true;
  // Whether a driver that polls for a send due sooner than a wake-up (and finds nothing to read)
  // yields its CPU. Needed when the server or another driver may be waiting for that CPU; alone
  // there, a yield hands the CPU to whatever else is runnable (a kernel thread, the harness's own
  // readings) until the scheduler's next tick, and the sends due meanwhile leave milliseconds late.
  bool yield_when_polling = true;
  // UDP: each connection is a connected UDP socket; a message is one datagram (size 16..65507)
  // starting with its sequence number in 16 upper-case hex digits. A message with no reply within
  // `loss_timeout` is lost; a closed loop then sends the next.
  bool udp = false;
  harness::Duration loss_timeout = std::chrono::milliseconds(200);
  harness::Duration connect_timeout = std::chrono::seconds(15);
  int max_connects_in_flight = 128;
  const std::atomic<bool>* stop = nullptr;  // optional: set to end the run early (Ctrl-C)
  // Called on the calling thread once every connection has been answered, before the load begins
  // (without a barrier: before the drivers start), and just before the measurement window opens
  // and just after it closes. Slow readings (/proc scans take milliseconds) belong in the first
  // and the last: at the window's opening they held the load generator's CPU while its sends
  // fell due, and the burst that followed queued at the server inside the window.
  std::function<void()> on_load_start;
  std::function<void()> on_window_start;
  std::function<void()> on_window_end;
};

struct LoadResult {
  bool ok = false;
  std::string error;                     // why the load could not run (connect failed ...)
  uint64_t messages = 0;                 // round trips completed inside the window
  uint64_t wrong_bytes = 0;              // received bytes that differ from the expected reply
  uint64_t unread_headers = 0;           // --work: header bytes echoed back as sent (no work done)
  uint64_t broken_connections = 0;       // closed or reset by the server during the run
  uint64_t lost = 0;                     // UDP: due in the window, no reply within loss_timeout
  uint64_t strays = 0;                   // UDP: datagrams of another run (a reused port), ignored
  std::vector<uint64_t> per_connection;  // round trips inside the window, per connection
  harness::Histogram latency;            // round-trip time in ns, inside the window
  // --work with two classes: round trips by class (0 short, 1 long), and their slowdowns (latency
  // over the request's own CPU and wait, in thousandths); empty otherwise.
  std::vector<harness::Histogram> class_latency, class_slowdown;
  // Open loop, the messages due inside the window: how many, how late each left (ns), the gaps
  // between the sends and between their due times, and the time spent polling for sends due sooner
  // than a wake-up takes.
  uint64_t scheduled = 0;
  harness::Histogram send_lateness;
  GapStats gaps, due_gaps;
  double poll_seconds = 0;
  double wake_latency_us = 0;          // how late a sleep of this machine ended, measured at the start
  uint64_t seed = 0;                   // of the arrival process
  Intervals intervals;                 // the window's round trips by 100 ms
  double barrier_seconds = 0;          // from the start until every connection had been answered once
  uint64_t unanswered_at_barrier = 0;  // connections the load began without (answers had stopped coming)
  double window_seconds = 0;
  double silent_seconds = 0;  // from the window's last reply (or its start) to its end
  double warmup_seconds = 0;  // as it turned out (after the barrier): at least the configured warm-up
  bool interrupted = false;
  uint64_t salt = 0;  // drawn for this load's messages: no two loads share one
};

LoadResult RunLoad(const LoadConfig& config);

// Whether a TCP connection to `target` can be opened within `timeout`: "" or why not. Checked before
// any work starts, so a wrong --target is bad input, not a failed run.
std::string ProbeTcp(const harness::Endpoint& target, harness::Duration timeout);
// Whether a datagram sent to `target` is answered within `timeout` (sent again every 200 ms, as UDP
// may drop it): "" or why not. Its reply is a stray to any later load (its nonce is 0).
std::string ProbeUdp(const harness::Endpoint& target, harness::Duration timeout);

}  // namespace echo
