#include "scenarios/echo/io_uring/ring.h"

#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>

#include "scenarios/echo/work.h"

namespace echo::uring {
namespace {

// The first CPU this thread may run on: where an SQPOLL thread goes, so that it stays among the
// server's CPUs (placement) instead of taking the load generator's.
int FirstAllowedCpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return -1;
}

}  // namespace

int InitRing(io_uring& ring, const Technique& t) {
  io_uring_params params{};
  if (t.sqpoll) {
    params.flags = IORING_SETUP_SQPOLL;
    params.sq_thread_idle = 100;  // ms of an empty queue before the kernel thread sleeps
    if (const int cpu = FirstAllowedCpu(); cpu >= 0) {
      params.flags |= IORING_SETUP_SQ_AFF;
      params.sq_thread_cpu = static_cast<unsigned>(cpu);
    }
    return io_uring_queue_init_params(kRingEntries, &ring, &params);
  }
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | (t.spin_us ? IORING_SETUP_TASKRUN_FLAG : 0);
  int rc = io_uring_queue_init_params(kRingEntries, &ring, &params);
  if (rc == -EINVAL) rc = io_uring_queue_init(kRingEntries, &ring, 0);  // an older kernel
  return rc;
}

void RingLoop::Run() {
  if (InitRing(ring_, technique_) < 0) return;  // probed in Start(): does not happen
  if (!Setup()) {
    io_uring_queue_exit(&ring_);
    return;
  }
  Prepare(Tag(kWake, nullptr), [&](io_uring_sqe* sqe) { io_uring_prep_read(sqe, wake_fd_, &wake_value_, 8, 0); });
  coalesce_ = technique_.coalesce && (ring_.features & IORING_FEAT_MIN_TIMEOUT);
  while (!stopping_) Process(nullptr);
  Drain();
  Teardown();
  io_uring_queue_exit(&ring_);
}

void RingLoop::Process(__kernel_timespec* timeout) {
  io_uring_cqe* first = nullptr;
  if (technique_.spin_us > 0 && timeout == nullptr) Spin();
  int rc = 0;
  if (io_uring_cq_ready(&ring_) == 0) {
    const unsigned batch = coalesce_ && timeout == nullptr && Busy() ? WakeBatch() : 1;
    rc = batch > 1 ? WaitCoalesced(batch) : io_uring_submit_and_wait_timeout(&ring_, &first, 1, timeout, nullptr);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR) {
    stopping_ = true;
    return;
  }
  unsigned head, seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if ((cqe->user_data & kOpMask) == kWake) {
      stopping_ = true;
    } else {
      Complete(cqe->user_data, cqe->res, cqe->flags);
    }
    ++seen;
  }
  io_uring_cq_advance(&ring_, seen);
  AfterBatch();
}

bool RingLoop::Busy() {
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (!busy_.Due(now)) return busy_.busy();
  return busy_.Update(now, ThreadCpuNs(), work_cpu_ns_);
}

int RingLoop::WaitCoalesced(unsigned batch) {
  if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  __kernel_timespec bound{1, 0};
  io_uring_getevents_arg arg{};
  arg.sigmask_sz = _NSIG / 8;
  arg.pad = kCoalesceMicroseconds;  // min_wait_usec, in the kernels that have it
  arg.ts = reinterpret_cast<uint64_t>(&bound);
  const long rc = syscall(__NR_io_uring_enter, ring_.ring_fd, 0, batch, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                          &arg, sizeof arg);
  return rc < 0 ? -errno : 0;
}

void RingLoop::Spin() {
  io_uring_submit_and_get_events(&ring_);
  if (io_uring_cq_ready(&ring_) > 0) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(technique_.spin_us);
  while (std::chrono::steady_clock::now() < until) {
    if (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) {
      io_uring_get_events(&ring_);
      if (io_uring_cq_ready(&ring_) > 0) return;
    }
    __builtin_ia32_pause();
  }
}

}  // namespace echo::uring
