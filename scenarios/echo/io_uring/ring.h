// What every io_uring loop shares: the ring (created on the loop's thread), its wake-up eventfd,
// preparing operations, reaping every completion that is due per io_uring_enter, and the ways a
// loop waits (plain, coalesced when busy, or polling first). Rings are created with SINGLE_ISSUER |
// DEFER_TASKRUN where the kernel has them (6.1+) and SQPOLL is not asked for: completions are then
// processed only when this thread asks, with no inter-processor interrupts.
#pragma once

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>

#include "scenarios/echo/io_uring/busy_gate.h"
#include "scenarios/echo/io_uring/technique.h"
#include "scenarios/echo/protocol.h"

namespace echo::uring {

inline constexpr unsigned kRingEntries = 4096;
// Provided buffers per ring, each as large as the other models' per-connection buffer. Only the
// pages a message touches become resident: the first page of each from the start (BufferRing, 8 MiB
// in all), and for larger messages the pages beyond as the ring cycles through them. A connection
// holds one from its recv's completion until its send's; a burst that takes them all ends that recv
// (ENOBUFS), which is armed again as buffers come back.
inline constexpr unsigned kBuffers = 2048;
inline constexpr unsigned kBufferBytes = kBufferSize;
inline constexpr int kGroup = 0;

// `coalesce`: a busy loop (BusyGate) with C connections sleeps until C / kConnectionsPerWake of them
// have sent something (at most kMaxWakeBatch), or kCoalesceMicroseconds have passed with at least one.
inline constexpr unsigned kConnectionsPerWake = 2;
inline constexpr unsigned kMaxWakeBatch = 256;
inline constexpr unsigned kCoalesceMicroseconds = 50;
// Stopping, a loop processes completions kDrainTick at a time, at most kDrainTicks times (2 s), until
// the kernel holds nothing of its connections: no memory is freed while the kernel may write to it.
inline constexpr auto kDrainTick = std::chrono::milliseconds(50);
inline constexpr int kDrainTicks = 40;
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)  // 6.12; liburing 2.3's header predates it
#endif

// user_data: bits 0-2 the operation, 3-47 an 8-aligned pointer, 48-63 a buffer id. kWait: a
// request's wait (--work) is over.
enum Op : uint64_t { kAccept = 1, kRecv = 2, kSend = 3, kWake = 4, kTimeout = 5, kIgnore = 6, kWait = 7 };
inline constexpr uint64_t kOpMask = 7;
inline constexpr int kBidShift = 48;
inline constexpr uint64_t kPointerMask = ((uint64_t{1} << kBidShift) - 1) & ~kOpMask;

inline uint64_t Tag(Op op, const void* p, unsigned bid = 0) {
  return reinterpret_cast<uint64_t>(p) | op | (uint64_t{bid} << kBidShift);
}

// A new ring for a loop of technique `t`; returns io_uring_queue_init's result (negative: errno).
int InitRing(io_uring& ring, const Technique& t);

// What every loop shares: its ring, its wake-up eventfd, preparing operations, and reaping every
// completion that is due per io_uring_enter.
class RingLoop {
 public:
  RingLoop(const Technique& t, const ReplyMode& reply)
      : technique_(t), reply_(reply), wake_fd_(eventfd(0, EFD_CLOEXEC)) {}
  virtual ~RingLoop() { close(wake_fd_); }

  void Wake() {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) {
      // An eventfd written once cannot be full.
    }
  }

  void Run();

 protected:
  // On the loop's thread, once its ring exists: registrations, the first operations. False: give up.
  virtual bool Setup() = 0;
  virtual void Complete(uint64_t data, int res, unsigned flags) = 0;
  // After a batch of completions (returned buffers become visible here).
  virtual void AfterBatch() {}
  // `coalesce`: how many completions a sleep waits for before the first one's sender wakes it.
  virtual unsigned WakeBatch() const { return 1; }
  // Ends every connection and waits, bounded, for their operations, so that no memory is freed
  // while the kernel may still write to it.
  virtual void Drain() {}
  virtual void Teardown() {}

  template <typename Fn>
  io_uring_sqe* Prepare(uint64_t data, Fn&& fill) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // submission queue full: hand it to the kernel and take a fresh slot
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    fill(sqe);
    io_uring_sqe_set_data64(sqe, data);
    return sqe;
  }

  // Submits what is prepared, waits for at least one completion (or the timeout), handles them all.
  void Process(__kernel_timespec* timeout);
  // Processes completions until `drained()`, at most kDrainTicks ticks of kDrainTick.
  template <typename Drained>
  void DrainUntil(Drained drained) {
    __kernel_timespec tick{0, std::chrono::nanoseconds(kDrainTick).count()};
    for (int i = 0; i < kDrainTicks && !drained(); ++i) Process(&tick);
  }

  // Whether this loop has been busy (BusyGate): one clock_gettime of the thread's CPU time a window.
  bool Busy();

  // Sleeps until `batch` completions are due, or kCoalesceMicroseconds have passed since it began
  // with at least one due (the kernel's batch wait, 6.12: with DEFER_TASKRUN the senders of the
  // first batch - 1 do not wake this thread at all); after that, until the first. The bound on the
  // whole wait (1 s) only makes the kernel keep waiting after the batch time when nothing came.
  int WaitCoalesced(unsigned batch);

  // Before sleeping: submits, runs what the kernel has queued, and then polls, for spin_us, the
  // flag by which the kernel says it has work queued for this thread (IORING_SQ_TASKRUN, in shared
  // memory: no system call). Work that arrives meanwhile costs no wake-up on either side: the
  // sender's CPU need not interrupt this one, which is running. The price is the CPU spent polling.
  void Spin();

  // The descriptor field of an operation on `fd`: a registered file's index, or a descriptor.
  void Target(io_uring_sqe* sqe) const {
    if (technique_.fixed_files) sqe->flags |= IOSQE_FIXED_FILE;
  }

  const Technique technique_;
  const ReplyMode& reply_;
  io_uring ring_{};
  bool stopping_ = false;
  int64_t work_cpu_ns_ = 0;  // CPU burned for requests' --work, so far (BusyGate)

 private:
  const int wake_fd_;
  uint64_t wake_value_ = 0;
  bool coalesce_ = false;  // asked for, and the kernel has the batch wait
  BusyGate busy_;
};

}  // namespace echo::uring
