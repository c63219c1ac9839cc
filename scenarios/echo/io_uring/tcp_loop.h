// What the io_uring TCP loops share: the accept loop and the dispatch of completions (TcpLoop),
// and the multishot recv into provided buffers (ProvidedBufferLoop) that `multishot` and --work's
// loop derive from. Included by tcp_loops.cc and work_loop.cc only.
#pragma once

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <unordered_set>
#include <vector>

#include "scenarios/echo/io_uring/buffer_ring.h"
#include "scenarios/echo/io_uring/ring.h"
#include "scenarios/echo/server.h"

namespace echo::uring {

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
      Prepare(Tag(kIgnore, nullptr),
              [&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, static_cast<unsigned>(fd)); });
    } else {
      close(fd);
    }
  }

  virtual void Open(int fd) = 0;
  // A connection's recv or send completed; `c` is the pointer its operation was tagged with.
  virtual void Received(void* c, int res, unsigned flags) = 0;
  virtual void Sent(void* c, int res) = 0;
  virtual void Waited(void*) {}

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
      case kWait:
        return Waited(c);
      default:
        return;
    }
  }

  const int listen_fd_;
  __kernel_timespec back_off_{0, std::chrono::nanoseconds(kAcceptBackOff).count()};
};

// What the loops that receive with a multishot recv into provided buffers share (`multishot` and
// its forms, and --work's loop): the buffer ring, the connections, those whose recv ended for want
// of buffers, and how a connection goes. C has `fd`, `receiving`, `closing`, `chunks` (each with
// the `bid` of a provided buffer it still holds), Busy() (the kernel holds an operation of it) and
// Forget() (the kernel holds none any more: the drain is over).
template <typename C>
class ProvidedBufferLoop : public TcpLoop {
 public:
  using TcpLoop::TcpLoop;

 protected:
  unsigned WakeBatch() const override {
    return std::clamp(static_cast<unsigned>(connections_.size()) / kConnectionsPerWake, 1u, kMaxWakeBatch);
  }

  // Registers the buffer ring (if `buffers`) and, for `fixed`, the file table; then accepts.
  bool SetupRing(bool buffers) {
    if (buffers && !buffers_.Register(ring_)) return false;
    if (technique_.fixed_files) {
      rlimit limit{};
      getrlimit(RLIMIT_NOFILE, &limit);
      const unsigned slots = static_cast<unsigned>(std::min<rlim_t>(limit.rlim_cur, 1u << 20));
      if (io_uring_register_files_sparse(&ring_, slots) != 0) return false;
    }
    ArmAccept();
    return true;
  }

  void Teardown() override { buffers_.Unmap(); }  // nothing to unmap if none was registered

  // Arms the connection's multishot recv into the provided buffers.
  virtual void Receive(C* c) {
    c->receiving = true;
    Prepare(Tag(kRecv, c), [&](io_uring_sqe* sqe) {
      io_uring_prep_recv_multishot(sqe, c->fd, nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = kGroup;
      Target(sqe);
    });
  }

  // A send of `p` completed with `res`: its bytes counted, or the connection closing (nullptr).
  C* SendCompleted(void* p, int res) {
    auto* c = static_cast<C*>(p);
    c->sending = false;
    if (res < 0 || c->closing) {
      c->closing = true;
      Settle(c);
      return nullptr;
    }
    c->sent += static_cast<uint32_t>(res);
    return c;
  }

  // A closing connection goes once the kernel holds nothing of it.
  void Settle(C* c) {
    if (!c->closing || c->Busy()) return;
    for (const auto& chunk : c->chunks) buffers_.Return(chunk.bid);
    CloseDescriptor(c->fd);
    connections_.erase(c);
    std::erase(starved_, c);
    delete c;
  }

  void AfterBatch() override {
    if (buffers_.Publish() == 0 || starved_.empty()) return;
    std::vector<C*> waiting;
    waiting.swap(starved_);
    for (C* c : waiting) {
      if (!c->closing && !c->receiving) Receive(c);
    }
  }

  void Drain() override {
    for (C* c : connections_) c->closing = true;
    starved_.clear();
    Prepare(Tag(kIgnore, nullptr), [&](io_uring_sqe* sqe) { io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY); });
    for (C* c : std::unordered_set<C*>(connections_)) Settle(c);
    DrainUntil([&] { return connections_.empty(); });
    for (C* c : std::unordered_set<C*>(connections_)) {
      c->Forget();
      Settle(c);
    }
    io_uring_submit(&ring_);
  }

  BufferRing buffers_;
  std::unordered_set<C*> connections_;
  std::vector<C*> starved_;  // recv ended for want of buffers
};

}  // namespace echo::uring
