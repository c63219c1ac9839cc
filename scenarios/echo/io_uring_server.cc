// `io_uring`: a liburing completion loop per worker thread, each with its own ring and a multishot
// accept on the shared listening socket. Variants (--variant), the first the default:
//
//   coalesce   multishot, and a loop that is busy (over 85% of a CPU in the last 10 ms, until it
//              falls under 60%) sleeps with the kernel's batch wait (6.12): until half of its
//              connections have sent something (at most 256), or 50 us have passed with at least
//              one. With DEFER_TASKRUN the senders before the last of a batch do not wake it at all,
//              so a saturated server and its clients pay for fewer wake-ups; a server with time to
//              spare wakes at the first message as before, so light loads keep their latency.
//              (On a kernel without the batch wait it is `multishot`.)
//   multishot  one multishot recv per connection into a ring-mapped group of provided buffers; each
//              reply is sent from the buffer it arrived in, submitted as soon as it is made, and the
//              buffer goes back to the ring when the send completes. No buffer belongs to a
//              connection: memory follows the messages in flight, not the connections.
//   batch      multishot, the replies of a batch of completions submitted together by the next
//              io_uring_enter: the fewest system calls (the least CPU at a given load), but a
//              closed-loop client waits for the whole batch, and finds the server asleep more often
//              (on this VM each such wake-up costs the client a few microseconds).
//   fixed      multishot, with connections accepted straight into the ring's registered file table
//              (no descriptor lookup per operation).
//   sqpoll     multishot, with a kernel thread polling the submission queue (no io_uring_enter to
//              submit), pinned to the first of the server's CPUs.
//   spin       multishot, and a loop with nothing to do polls its ring for 20 us before it sleeps:
//              work that arrives meanwhile costs no wake-up, at the price of the CPU spent polling.
//   single     one recv or send in flight per connection, into the connection's own 16 KiB buffer
//              (recv, then send until the reply is out, then recv): the form before multishot.
// UDP: multishot recvmsg (single: one recvmsg at a time); the replies of a batch go together.
//
// Rings are created on the thread that uses them, with SINGLE_ISSUER | DEFER_TASKRUN where the
// kernel has them (6.1+) and SQPOLL is not asked for: completions are then processed only when this
// thread asks, with no inter-processor interrupts, and every io_uring_enter reaps all that are due.
// Where the kernel refuses io_uring (containers often do), Start() throws and the model is reported
// unavailable. Connections inherit TCP_NODELAY from the listening socket (Linux copies it at accept),
// which is how a connection accepted into the file table, with no descriptor to setsockopt, gets it.
#include <liburing.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

constexpr unsigned kRingEntries = 4096;
// Provided buffers per ring, each as large as the other models' per-connection buffer. Only the
// pages a message touches become resident: for small messages, one page per buffer the ring has
// cycled through (at most 8 MiB). A connection holds one from its recv's completion until its
// send's; a burst that takes them all ends that recv (ENOBUFS), which is armed again as buffers
// come back.
constexpr unsigned kBuffers = 2048;
constexpr unsigned kBufferBytes = kBufferSize;
constexpr int kGroup = 0;

// `spin`: how long a loop with nothing to do polls its ring before it sleeps in the kernel.
constexpr int kSpinMicroseconds = 20;

// `coalesce`: a busy loop with C connections sleeps until C / kConnectionsPerWake of them have
// sent something (at most kMaxWakeBatch), or kCoalesceMicroseconds have passed with at least one.
// Busy: its thread ran more than kBusyFrom of the last kBusyWindow, and stays so until under kBusyUntil.
constexpr unsigned kConnectionsPerWake = 2;
constexpr unsigned kMaxWakeBatch = 256;
constexpr unsigned kCoalesceMicroseconds = 50;
constexpr auto kBusyWindow = std::chrono::milliseconds(10);
constexpr double kBusyFrom = 0.85;
constexpr double kBusyUntil = 0.6;
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)  // 6.12; liburing 2.3's header predates it
#endif

struct Technique {
  bool multishot = true;
  bool fixed_files = false;
  bool sqpoll = false;
  int spin_us = 0;
  bool coalesce = false;  // when busy, wake for a batch (the kernel's batch wait)
  bool eager = true;  // TCP: submit each reply as soon as it is made, not once per batch
};

Technique TechniqueOf(const std::string& variant) {
  if (variant == "single") return {.multishot = false};
  if (variant == "fixed") return {.fixed_files = true};
  if (variant == "sqpoll") return {.sqpoll = true};
  if (variant == "spin") return {.spin_us = kSpinMicroseconds};
  if (variant == "batch") return {.eager = false};
  if (variant == "multishot") return {};
  return {.coalesce = true};  // "coalesce", the default
}

// user_data: bits 0-2 the operation, 3-47 an 8-aligned pointer, 48-63 a buffer id.
enum Op : uint64_t { kAccept = 1, kRecv = 2, kSend = 3, kWake = 4, kTimeout = 5, kIgnore = 6 };
constexpr uint64_t kOpMask = 7;
constexpr int kBidShift = 48;
constexpr uint64_t kPointerMask = ((uint64_t{1} << kBidShift) - 1) & ~kOpMask;

uint64_t Tag(Op op, const void* p, unsigned bid = 0) {
  return reinterpret_cast<uint64_t>(p) | op | (uint64_t{bid} << kBidShift);
}

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

  void Run() {
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
  void Process(__kernel_timespec* timeout) {
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

  // Whether this thread has been busy: its CPU time over the wall time of the last window, with
  // hysteresis. One clock_gettime of the thread's CPU time per window.
  bool Busy() {
    const auto now = std::chrono::steady_clock::now();
    if (now - window_start_ < kBusyWindow) return busy_;
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    const double cpu = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    const double share = (cpu - window_cpu_s_) / std::chrono::duration<double>(now - window_start_).count();
    busy_ = share > (busy_ ? kBusyUntil : kBusyFrom);
    window_start_ = now;
    window_cpu_s_ = cpu;
    return busy_;
  }

  // Sleeps until `batch` completions are due, or kCoalesceMicroseconds have passed since it began
  // with at least one due (the kernel's batch wait, 6.12: with DEFER_TASKRUN the senders of the
  // first batch - 1 do not wake this thread at all); after that, until the first. The bound on the
  // whole wait (1 s) only makes the kernel keep waiting after the batch time when nothing came.
  int WaitCoalesced(unsigned batch) {
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

  // Before sleeping: submits, runs what the kernel has queued, and then polls, for spin_us, the
  // flag by which the kernel says it has work queued for this thread (IORING_SQ_TASKRUN, in shared
  // memory: no system call). Work that arrives meanwhile costs no wake-up on either side: the
  // sender's CPU need not interrupt this one, which is running. The price is the CPU spent polling.
  void Spin() {
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

  // The descriptor field of an operation on `fd`: a registered file's index, or a descriptor.
  void Target(io_uring_sqe* sqe) const {
    if (technique_.fixed_files) sqe->flags |= IOSQE_FIXED_FILE;
  }

  const Technique technique_;
  const ReplyMode& reply_;
  io_uring ring_{};
  bool stopping_ = false;

 private:
  const int wake_fd_;
  uint64_t wake_value_ = 0;
  bool coalesce_ = false;  // asked for, and the kernel has the batch wait
  bool busy_ = false;
  std::chrono::steady_clock::time_point window_start_{};
  double window_cpu_s_ = 0;
};

// A ring-mapped group of provided buffers (liburing 2.3 has no io_uring_setup_buf_ring: the ring
// is mapped and registered here).
class BufferRing {
 public:
  bool Register(io_uring& ring) {
    ring_bytes_ = kBuffers * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    void* data = mmap(nullptr, size_t{kBuffers} * kBufferBytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED || data == MAP_FAILED) return false;
    br_ = static_cast<io_uring_buf_ring*>(mem);
    data_ = static_cast<char*>(data);
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(mem);
    reg.ring_entries = kBuffers;
    reg.bgid = kGroup;
    if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) return false;
    for (unsigned bid = 0; bid < kBuffers; ++bid) Return(bid);
    Publish();
    return true;
  }

  void Unmap() {
    if (br_ != nullptr) munmap(br_, ring_bytes_);
    if (data_ != nullptr) munmap(data_, size_t{kBuffers} * kBufferBytes);
    br_ = nullptr;
    data_ = nullptr;
  }

  char* Buffer(unsigned bid) const { return data_ + size_t{bid} * kBufferBytes; }
  // Hands a buffer back; the kernel sees it after Publish().
  void Return(unsigned bid) {
    io_uring_buf_ring_add(br_, Buffer(bid), kBufferBytes, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(kBuffers), returned_++);
  }
  // Makes the returned buffers visible to the kernel; how many there were.
  int Publish() {
    const int n = returned_;
    if (n > 0) io_uring_buf_ring_advance(br_, n);
    returned_ = 0;
    return n;
  }

 private:
  io_uring_buf_ring* br_ = nullptr;
  char* data_ = nullptr;
  size_t ring_bytes_ = 0;
  int returned_ = 0;
};

// TCP: accepts (multishot; back-off and re-arm when out of descriptors) for both forms.
class TcpLoop : public RingLoop {
 public:
  TcpLoop(int listen_fd, const Technique& t, const ReplyMode& reply) : RingLoop(t, reply), listen_fd_(listen_fd) {}

 protected:
  void ArmAccept() {
    Prepare(Tag(kAccept, nullptr), [&](io_uring_sqe* sqe) {
      if (technique_.fixed_files) {  // a registered file has no close-on-exec (the kernel refuses the flag)
        io_uring_prep_multishot_accept_direct(sqe, listen_fd_, nullptr, nullptr, 0);
      } else {
        io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      }
    });
  }

  // An accept's completion; calls Open() with each new connection.
  void Accepted(int res, unsigned flags) {
    if (res >= 0) Open(res);
    if (flags & IORING_CQE_F_MORE || stopping_) return;
    if (res < 0 && OutOfResources(-res)) {  // out of descriptors (or table slots): accept again later
      Prepare(Tag(kTimeout, nullptr), [&](io_uring_sqe* sqe) { io_uring_prep_timeout(sqe, &back_off_, 0, 0); });
      return;
    }
    ArmAccept();  // the kernel ended the multishot
  }

  void CloseDescriptor(int fd) {
    if (technique_.fixed_files) {
      Prepare(Tag(kIgnore, nullptr), [&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, static_cast<unsigned>(fd)); });
    } else {
      close(fd);
    }
  }

  virtual void Open(int fd) = 0;
  // A connection's recv or send completed; `c` is the pointer its operation was tagged with.
  virtual void Received(void* c, int res, unsigned flags) = 0;
  virtual void Sent(void* c, int res) = 0;

  void Complete(uint64_t data, int res, unsigned flags) final {
    void* c = reinterpret_cast<void*>(data & kPointerMask);
    switch (static_cast<Op>(data & kOpMask)) {
      case kAccept:
        return Accepted(res, flags);
      case kTimeout:  // an accept back-off is over
        if (!stopping_) ArmAccept();
        return;
      case kRecv:
        return Received(c, res, flags);
      case kSend:
        return Sent(c, res);
      default:
        return;
    }
  }

  const int listen_fd_;
  __kernel_timespec back_off_{0, std::chrono::nanoseconds(kAcceptBackOff).count()};
};

// `single`: one operation in flight per connection, into its own buffer.
class SingleLoop final : public TcpLoop {
 public:
  using TcpLoop::TcpLoop;

 private:
  struct alignas(8) Connection {
    int fd;
    uint32_t sent = 0;
    uint32_t length = 0;
    char buf[kBufferSize];
  };

  bool Setup() override {
    ArmAccept();
    return true;
  }

  void Recv(Connection* c) {
    const size_t room = reply_.headroom();
    Prepare(Tag(kRecv, c), [&](io_uring_sqe* sqe) {
      io_uring_prep_recv(sqe, c->fd, c->buf + room, sizeof c->buf - room, 0);
      Target(sqe);
    });
  }

  void Send(Connection* c) {
    Prepare(Tag(kSend, c), [&](io_uring_sqe* sqe) {
      io_uring_prep_send(sqe, c->fd, c->buf + c->sent, c->length - c->sent, MSG_NOSIGNAL);
      Target(sqe);
    });
  }

  void Received(void* p, int res, unsigned) override {
    auto* c = static_cast<Connection*>(p);
    if (res <= 0) return Close(c);
    c->sent = 0;
    c->length = static_cast<uint32_t>(reply_.Make(c->buf, static_cast<size_t>(res)));
    Send(c);
  }

  void Sent(void* p, int res) override {
    auto* c = static_cast<Connection*>(p);
    if (res < 0) return Close(c);
    c->sent += static_cast<uint32_t>(res);
    c->sent < c->length ? Send(c) : Recv(c);
  }

  void Open(int fd) override {
    auto* c = new Connection;  // default-initialised: the buffer's pages stay untouched until used
    c->fd = fd;
    connections_.insert(c);
    Recv(c);
  }

  void Close(Connection* c) {
    CloseDescriptor(c->fd);
    connections_.erase(c);
    delete c;
  }

  void Drain() override {
    Prepare(Tag(kIgnore, nullptr), [&](io_uring_sqe* sqe) { io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY); });
    __kernel_timespec tick{0, 50'000'000};
    for (int i = 0; i < 40 && !connections_.empty(); ++i) Process(&tick);
    for (Connection* c : std::unordered_set<Connection*>(connections_)) Close(c);
    io_uring_submit(&ring_);
  }

  std::unordered_set<Connection*> connections_;
};

// `multishot` (and `fixed`, `sqpoll`): one multishot recv per connection into provided buffers; a
// connection's replies are sent one at a time, in order, each from the buffer its bytes came in.
class MultishotLoop final : public TcpLoop {
 public:
  using TcpLoop::TcpLoop;

 private:
  struct Chunk {
    uint16_t bid;
    uint32_t length;  // bytes received into the buffer
  };
  struct alignas(8) Connection {
    int fd;
    bool receiving = false;  // a multishot recv is armed
    bool sending = false;    // queue.front()'s reply is being sent
    bool closing = false;
    uint32_t sent = 0;          // bytes of queue.front()'s reply sent (the prefix counts)
    std::vector<Chunk> queue;   // received, reply not yet sent whole; front() in flight
    msghdr msg{};               // a prefixed reply in flight: the prefix and the bytes
    iovec iov[2]{};
  };

  unsigned WakeBatch() const override {
    return std::clamp(static_cast<unsigned>(connections_.size()) / kConnectionsPerWake, 1u, kMaxWakeBatch);
  }

  bool Setup() override {
    if (!buffers_.Register(ring_)) return false;
    if (technique_.fixed_files) {
      rlimit limit{};
      getrlimit(RLIMIT_NOFILE, &limit);
      const unsigned slots = static_cast<unsigned>(std::min<rlim_t>(limit.rlim_cur, 1u << 20));
      if (io_uring_register_files_sparse(&ring_, slots) != 0) return false;
    }
    ArmAccept();
    return true;
  }

  void Teardown() override { buffers_.Unmap(); }

  void Open(int fd) override {
    auto* c = new Connection;
    c->fd = fd;
    connections_.insert(c);
    Receive(c);
  }

  void Receive(Connection* c) {
    c->receiving = true;
    Prepare(Tag(kRecv, c), [&](io_uring_sqe* sqe) {
      io_uring_prep_recv_multishot(sqe, c->fd, nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = kGroup;
      Target(sqe);
    });
  }

  // Sends what remains of queue.front()'s reply: the prefix (if any) and the bytes, from its buffer.
  void Send(Connection* c) {
    c->sending = true;
    const Chunk& chunk = c->queue.front();
    char* data = buffers_.Buffer(chunk.bid);
    const size_t prefix = reply_.headroom();
    if (c->sent == 0) reply_.Transform(data, chunk.length);
    if (c->sent >= prefix) {
      const size_t from = c->sent - prefix;
      Prepare(Tag(kSend, c), [&](io_uring_sqe* sqe) {
        io_uring_prep_send(sqe, c->fd, data + from, chunk.length - from, MSG_NOSIGNAL);
        Target(sqe);
      });
      if (technique_.eager) io_uring_submit(&ring_);
      return;
    }
    c->iov[0] = {const_cast<char*>(reply_.prefix().data()) + c->sent, prefix - c->sent};
    c->iov[1] = {data, chunk.length};
    c->msg = {};
    c->msg.msg_iov = c->iov;
    c->msg.msg_iovlen = 2;
    Prepare(Tag(kSend, c), [&](io_uring_sqe* sqe) {
      io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
      Target(sqe);
    });
    if (technique_.eager) io_uring_submit(&ring_);
  }

  void Received(void* p, int res, unsigned flags) override {
    auto* c = static_cast<Connection*>(p);
    if (!(flags & IORING_CQE_F_MORE)) c->receiving = false;
    if (res > 0) {
      const auto bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      if (c->closing) {
        buffers_.Return(bid);
      } else {
        c->queue.push_back({bid, static_cast<uint32_t>(res)});
        if (!c->sending) Send(c);
      }
      if (!c->receiving && !c->closing) Receive(c);  // the kernel ended it (a full completion queue)
      return Settle(c);
    }
    if (res == -ENOBUFS && !c->closing) {
      starved_.push_back(c);  // armed again once buffers come back
      return;
    }
    c->closing = true;  // end of stream, or an error
    Settle(c);
  }

  void Sent(void* p, int res) override {
    auto* c = static_cast<Connection*>(p);
    c->sending = false;
    if (res < 0 || c->closing) {
      c->closing = true;
      return Settle(c);
    }
    c->sent += static_cast<uint32_t>(res);
    if (c->sent < reply_.headroom() + c->queue.front().length) return Send(c);
    buffers_.Return(c->queue.front().bid);
    c->queue.erase(c->queue.begin());
    c->sent = 0;
    if (!c->queue.empty()) Send(c);
  }

  // A closing connection goes once the kernel holds nothing of it.
  void Settle(Connection* c) {
    if (!c->closing || c->receiving || c->sending) return;
    for (const Chunk& chunk : c->queue) buffers_.Return(chunk.bid);
    CloseDescriptor(c->fd);
    connections_.erase(c);
    std::erase(starved_, c);
    delete c;
  }

  void AfterBatch() override {
    if (buffers_.Publish() == 0 || starved_.empty()) return;
    std::vector<Connection*> waiting;
    waiting.swap(starved_);
    for (Connection* c : waiting) {
      if (!c->closing && !c->receiving) Receive(c);
    }
  }

  void Drain() override {
    for (Connection* c : connections_) c->closing = true;
    starved_.clear();
    Prepare(Tag(kIgnore, nullptr), [&](io_uring_sqe* sqe) { io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY); });
    for (Connection* c : std::unordered_set<Connection*>(connections_)) Settle(c);
    __kernel_timespec tick{0, 50'000'000};
    for (int i = 0; i < 40 && !connections_.empty(); ++i) Process(&tick);
    for (Connection* c : std::unordered_set<Connection*>(connections_)) {
      c->receiving = c->sending = false;
      Settle(c);
    }
    io_uring_submit(&ring_);
  }

  BufferRing buffers_;
  std::unordered_set<Connection*> connections_;
  std::vector<Connection*> starved_;  // recv ended for want of buffers
};

// UDP: each worker's ring receives from the shared socket and answers each datagram to its sender.
// multishot (and fixed, sqpoll): one multishot recvmsg into provided buffers, the reply sent with
// sendmsg from the buffer, which returns to the ring when the send completes. single: one recvmsg
// into the loop's buffer, then its sendmsg, then the next recvmsg. A reply the socket cannot take
// is lost, as UDP allows (the client counts it).
class UdpLoop final : public RingLoop {
 public:
  UdpLoop(int fd, const Technique& t, const ReplyMode& reply) : RingLoop(t, reply), socket_fd_(fd) {}

 private:
  // One reply in flight: its header, address and pieces. Indexed by buffer id (multishot) or [0].
  struct Outgoing {
    msghdr msg{};
    iovec iov[2]{};
    sockaddr_storage peer{};
  };

  bool Setup() override {
    int fd = socket_fd_;
    if (technique_.fixed_files) {
      if (io_uring_register_files(&ring_, &fd, 1) != 0) return false;
      fd = 0;
    }
    target_ = fd;
    if (technique_.multishot) {
      if (!buffers_.Register(ring_)) return false;
      outgoing_.resize(kBuffers);
    } else {
      outgoing_.resize(1);
      single_buffer_.resize(65536 + ReplyMode::kMaxPrefix);
    }
    Receive();
    return true;
  }

  void Teardown() override { buffers_.Unmap(); }

  void Receive() {
    receiving_ = true;
    if (technique_.multishot) {
      recv_msg_ = {};
      recv_msg_.msg_namelen = sizeof(sockaddr_storage);
      Prepare(Tag(kRecv, nullptr), [&](io_uring_sqe* sqe) {
        io_uring_prep_recvmsg_multishot(sqe, target_, &recv_msg_, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
        Target(sqe);
      });
      return;
    }
    Outgoing& out = outgoing_[0];
    out.iov[1] = {single_buffer_.data() + reply_.headroom(), single_buffer_.size() - reply_.headroom()};
    recv_msg_ = {};
    recv_msg_.msg_name = &out.peer;
    recv_msg_.msg_namelen = sizeof out.peer;
    recv_msg_.msg_iov = &out.iov[1];
    recv_msg_.msg_iovlen = 1;
    Prepare(Tag(kRecv, nullptr), [&](io_uring_sqe* sqe) {
      io_uring_prep_recvmsg(sqe, target_, &recv_msg_, 0);
      Target(sqe);
    });
  }

  void Complete(uint64_t data, int res, unsigned flags) override {
    switch (static_cast<Op>(data & kOpMask)) {
      case kRecv:
        return technique_.multishot ? ReceivedMultishot(res, flags) : ReceivedSingle(res);
      case kSend:
        if (technique_.multishot) {
          buffers_.Return(static_cast<unsigned>(data >> kBidShift));
        } else if (!stopping_) {
          Receive();
        }
        return;
      default:
        return;
    }
  }

  void ReceivedSingle(int res) {
    receiving_ = false;
    if (res < 0) {
      if (!stopping_) Receive();
      return;
    }
    Outgoing& out = outgoing_[0];
    const size_t n = reply_.Make(single_buffer_.data(), static_cast<size_t>(res));
    out.iov[0] = {single_buffer_.data(), n};
    out.msg = {};
    out.msg.msg_name = &out.peer;
    out.msg.msg_namelen = recv_msg_.msg_namelen;
    out.msg.msg_iov = out.iov;
    out.msg.msg_iovlen = 1;
    Prepare(Tag(kSend, nullptr), [&](io_uring_sqe* sqe) {
      io_uring_prep_sendmsg(sqe, target_, &out.msg, MSG_DONTWAIT);
      Target(sqe);
    });
  }

  void ReceivedMultishot(int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) receiving_ = false;
    if (flags & IORING_CQE_F_BUFFER) {
      const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
      char* buf = buffers_.Buffer(bid);
      io_uring_recvmsg_out* o = res >= 0 ? io_uring_recvmsg_validate(buf, res, &recv_msg_) : nullptr;
      if (o == nullptr || (o->flags & MSG_TRUNC)) {
        buffers_.Return(bid);  // cut short: a datagram larger than a buffer is not answered
      } else {
        Outgoing& out = outgoing_[bid];
        char* payload = static_cast<char*>(io_uring_recvmsg_payload(o, &recv_msg_));
        const size_t n = io_uring_recvmsg_payload_length(o, res, &recv_msg_);
        std::memcpy(&out.peer, io_uring_recvmsg_name(o), std::min<size_t>(o->namelen, sizeof out.peer));
        reply_.Transform(payload, n);
        out.iov[0] = {const_cast<char*>(reply_.prefix().data()), reply_.headroom()};
        out.iov[1] = {payload, n};
        out.msg = {};
        out.msg.msg_name = &out.peer;
        out.msg.msg_namelen = o->namelen;
        out.msg.msg_iov = reply_.headroom() > 0 ? out.iov : out.iov + 1;
        out.msg.msg_iovlen = reply_.headroom() > 0 ? 2 : 1;
        Prepare(Tag(kSend, nullptr, bid), [&](io_uring_sqe* sqe) {
          io_uring_prep_sendmsg(sqe, target_, &out.msg, MSG_DONTWAIT);
          Target(sqe);
        });
      }
    }
    if (!receiving_ && res != -ENOBUFS && !stopping_) Receive();
  }

  void AfterBatch() override {
    if (buffers_.Publish() > 0 && !receiving_ && !stopping_ && technique_.multishot) Receive();
  }

  void Drain() override {
    Prepare(Tag(kIgnore, nullptr), [&](io_uring_sqe* sqe) { io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY); });
    __kernel_timespec tick{0, 20'000'000};
    for (int i = 0; i < 5; ++i) Process(&tick);  // the cancelled and the last sends complete
  }

  const int socket_fd_;
  int target_ = -1;
  bool receiving_ = false;
  msghdr recv_msg_{};
  BufferRing buffers_;
  std::vector<Outgoing> outgoing_;
  std::vector<char> single_buffer_;
};

class IoUringServer final : public EchoServer {
 public:
  IoUringServer(const ServerConfig& config, bool udp)
      : workers_(config.workers), technique_(TechniqueOf(config.variant)), reply_(config.reply), udp_(udp) {}

  void Start(int fd) override {
    io_uring probe{};
    if (const int rc = InitRing(probe, technique_); rc < 0) {
      close(fd);
      throw std::runtime_error(std::string("io_uring unavailable: ") + strerror(-rc));
    }
    io_uring_queue_exit(&probe);
    fd_ = fd;
    if (!udp_) SetNoDelay(fd_);  // inherited by every accepted connection
    for (int i = 0; i < workers_; ++i) {
      if (udp_) {
        loops_.push_back(std::make_unique<UdpLoop>(fd, technique_, reply_));
      } else if (technique_.multishot) {
        loops_.push_back(std::make_unique<MultishotLoop>(fd, technique_, reply_));
      } else {
        loops_.push_back(std::make_unique<SingleLoop>(fd, technique_, reply_));
      }
    }
    for (auto& loop : loops_) threads_.emplace_back([&loop] { loop->Run(); });
  }

  void Stop() override {
    for (auto& loop : loops_) loop->Wake();
    for (auto& t : threads_) t.join();
    loops_.clear();
    close(fd_);
  }

 private:
  const int workers_;
  const Technique technique_;
  const ReplyMode reply_;
  const bool udp_;
  int fd_ = -1;
  std::vector<std::unique_ptr<RingLoop>> loops_;
  std::vector<std::thread> threads_;
};

std::unique_ptr<EchoServer> MakeTcp(const ServerConfig& config) { return std::make_unique<IoUringServer>(config, false); }
std::unique_ptr<EchoServer> MakeUdp(const ServerConfig& config) { return std::make_unique<IoUringServer>(config, true); }

}  // namespace

HARNESS_REGISTER(ModelEntry, {"io_uring", "liburing completion loop per worker thread, multishot accept",
                              Workers{"1", false}, &MakeTcp, &MakeUdp,
                              {{"coalesce", "multishot; when busy, a sleep lasts until half the connections have sent (at most 50 us with one)"},
                               {"multishot", "multishot recv into a ring of provided buffers, each reply sent from its buffer as soon as it is made"},
                               {"fixed", "multishot, connections accepted into the registered file table"},
                               {"sqpoll", "multishot, a kernel thread polls the submission queue (on a server CPU)"},
                               {"single", "one recv or send in flight per connection, into its own buffer"},
                               {"spin", "multishot, polling the ring's task-run flag 20 us before sleeping"},
                               {"batch", "multishot, the replies of a batch submitted together at its end (fewest system calls)"}}});

}  // namespace echo
