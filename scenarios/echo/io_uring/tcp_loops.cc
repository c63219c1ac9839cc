#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "scenarios/echo/io_uring/buffer_ring.h"
#include "scenarios/echo/io_uring/loops.h"
#include "scenarios/echo/server.h"
#include "scenarios/echo/work.h"

namespace echo::uring {
namespace {

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
    DrainUntil([&] { return connections_.empty(); });
    for (Connection* c : std::unordered_set<Connection*>(connections_)) Close(c);
    io_uring_submit(&ring_);
  }

  std::unordered_set<Connection*> connections_;
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

namespace multishot {

struct Chunk {
  uint16_t bid;
  uint32_t length;  // bytes received into the buffer
};
struct alignas(8) Connection {
  int fd;
  bool receiving = false;  // a multishot recv is armed
  bool sending = false;    // chunks.front()'s reply is being sent
  bool closing = false;
  uint32_t sent = 0;          // bytes of chunks.front()'s reply sent (the prefix counts)
  std::vector<Chunk> chunks;  // received, reply not yet sent whole; front() in flight
  msghdr msg{};               // a prefixed reply in flight: the prefix and the bytes
  iovec iov[2]{};
  bool Busy() const { return receiving || sending; }
  void Forget() { receiving = sending = false; }
};

}  // namespace multishot

// `multishot` (and `fixed`, `sqpoll`): one multishot recv per connection into provided buffers; a
// connection's replies are sent one at a time, in order, each from the buffer its bytes came in.
class MultishotLoop final : public ProvidedBufferLoop<multishot::Connection> {
 public:
  using ProvidedBufferLoop::ProvidedBufferLoop;

 private:
  using Chunk = multishot::Chunk;
  using Connection = multishot::Connection;

  bool Setup() override { return SetupRing(true); }

  void Open(int fd) override {
    auto* c = new Connection;
    c->fd = fd;
    connections_.insert(c);
    Receive(c);
  }

  // Sends what remains of chunks.front()'s reply: the prefix (if any) and the bytes, from its buffer.
  void Send(Connection* c) {
    c->sending = true;
    const Chunk& chunk = c->chunks.front();
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
        c->chunks.push_back({bid, static_cast<uint32_t>(res)});
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
    if (c->sent < reply_.headroom() + c->chunks.front().length) return Send(c);
    buffers_.Return(c->chunks.front().bid);
    c->chunks.erase(c->chunks.begin());
    c->sent = 0;
    if (!c->chunks.empty()) Send(c);
  }
};

namespace work {

struct Chunk {
  uint16_t bid;
  uint32_t length;
  uint32_t copied = 0;
};
struct alignas(8) Connection {
  int fd;
  bool receiving = false;  // a recv is armed (multishot, or single's one)
  bool sending = false;
  bool waiting = false;  // the front request's wait is running
  bool closing = false;
  WorkHeader current;         // the front request, once whole
  bool working = false;       // current is being served (burned, waited, or its reply sent)
  uint32_t sent = 0;          // bytes of the reply sent
  uint32_t length = 0;        // bytes of the reply
  size_t have = 0;            // request bytes in buf after the headroom
  std::vector<Chunk> chunks;  // multishot: received, not yet all copied into buf
  __kernel_timespec wait{};
  char buf[kBufferSize];
  bool Busy() const { return receiving || sending || waiting; }
  void Forget() { receiving = sending = waiting = false; }
};

}  // namespace work

// --work: see loops.h. A connection's received bytes are copied into its buffer (after the reply's
// headroom) as room allows, and each provided buffer goes back to the ring once copied.
class WorkLoop final : public ProvidedBufferLoop<work::Connection> {
 public:
  using ProvidedBufferLoop::ProvidedBufferLoop;

 private:
  using Chunk = work::Chunk;
  using Connection = work::Connection;

  bool Setup() override { return SetupRing(technique_.multishot); }

  size_t Capacity() const { return kBufferSize - reply_.headroom(); }
  char* In(Connection* c) const { return c->buf + reply_.headroom(); }

  void Open(int fd) override {
    auto* c = new Connection;
    c->fd = fd;
    connections_.insert(c);
    if (technique_.multishot) Receive(c);
    Advance(c);
  }

  void Receive(Connection* c) override {
    if (technique_.multishot) return ProvidedBufferLoop::Receive(c);
    c->receiving = true;
    Prepare(Tag(kRecv, c), [&](io_uring_sqe* sqe) {
      io_uring_prep_recv(sqe, c->fd, In(c) + c->have, Capacity() - c->have, 0);
      Target(sqe);
    });
  }

  // Copies what the chunks hold into the buffer, as room allows; returns the copied ones.
  void Fill(Connection* c) {
    while (!c->chunks.empty() && c->have < Capacity()) {
      Chunk& chunk = c->chunks.front();
      const size_t n = std::min<size_t>(chunk.length - chunk.copied, Capacity() - c->have);
      std::memcpy(In(c) + c->have, buffers_.Buffer(chunk.bid) + chunk.copied, n);
      c->have += n;
      chunk.copied += static_cast<uint32_t>(n);
      if (chunk.copied < chunk.length) break;
      buffers_.Return(chunk.bid);
      c->chunks.erase(c->chunks.begin());
    }
  }

  // Serves the front request once it is whole: burns its CPU, then waits (a timeout operation) or
  // replies. `single` reads more when it is not whole.
  void Advance(Connection* c) {
    if (c->working || c->closing) return;
    const WorkHeader::Read read = WorkHeader::From(In(c), c->have, Capacity(), &c->current);
    if (read == WorkHeader::Read::kBad) {  // not --work's protocol: the connection ends
      c->closing = true;
      return Settle(c);
    }
    if (read == WorkHeader::Read::kNeedMore || c->have < c->current.length) {
      if (!technique_.multishot && !c->receiving) Receive(c);
      return;
    }
    c->working = true;
    BurnCpu(c->current.cpu_ns);
    if (technique_.blocking_wait) BlockFor(c->current.wait_ns);  // every other connection waits too
    if (technique_.blocking_wait || c->current.wait_ns == 0) return Reply(c);
    c->waiting = true;
    c->wait.tv_sec = static_cast<int64_t>(c->current.wait_ns / 1'000'000'000);
    c->wait.tv_nsec = static_cast<long long>(c->current.wait_ns % 1'000'000'000);
    Prepare(Tag(kWait, c), [&](io_uring_sqe* sqe) { io_uring_prep_timeout(sqe, &c->wait, 0, 0); });
  }

  void Waited(void* p) override {
    auto* c = static_cast<Connection*>(p);
    c->waiting = false;
    if (c->closing) return Settle(c);
    Reply(c);
  }

  void Reply(Connection* c) {
    c->current.WriteReply(In(c));
    c->length = static_cast<uint32_t>(reply_.Make(c->buf, c->current.length));
    c->sent = 0;
    Send(c);
  }

  void Send(Connection* c) {
    c->sending = true;
    Prepare(Tag(kSend, c), [&](io_uring_sqe* sqe) {
      io_uring_prep_send(sqe, c->fd, c->buf + c->sent, c->length - c->sent, MSG_NOSIGNAL);
      Target(sqe);
    });
    if (technique_.eager) io_uring_submit(&ring_);
  }

  void Sent(void* p, int res) override {
    auto* c = static_cast<Connection*>(p);
    c->sending = false;
    if (res < 0 || c->closing) {
      c->closing = true;
      return Settle(c);
    }
    c->sent += static_cast<uint32_t>(res);
    if (c->sent < c->length) return Send(c);
    const size_t used = c->current.length;  // the request is answered: what came after it moves up
    std::memmove(In(c), In(c) + used, c->have - used);
    c->have -= used;
    c->working = false;
    Fill(c);
    Advance(c);
  }

  void Received(void* p, int res, unsigned flags) override {
    auto* c = static_cast<Connection*>(p);
    if (!technique_.multishot || !(flags & IORING_CQE_F_MORE)) c->receiving = false;
    if (res > 0) {
      if (technique_.multishot) {
        const auto bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->closing) {
          buffers_.Return(bid);
        } else {
          c->chunks.push_back({bid, static_cast<uint32_t>(res)});
          Fill(c);
        }
        if (!c->receiving && !c->closing) Receive(c);  // the kernel ended it
      } else {
        c->have += static_cast<size_t>(res);
      }
      Advance(c);
      return Settle(c);
    }
    if (res == -ENOBUFS && !c->closing) {
      starved_.push_back(c);
      return;
    }
    c->closing = true;  // end of stream, or an error
    Settle(c);
  }
};

}  // namespace

std::unique_ptr<RingLoop> MakeWorkLoop(int listen_fd, const Technique& t, const ReplyMode& reply) {
  return std::make_unique<WorkLoop>(listen_fd, t, reply);
}

std::unique_ptr<RingLoop> MakeSingleLoop(int listen_fd, const Technique& t, const ReplyMode& reply) {
  return std::make_unique<SingleLoop>(listen_fd, t, reply);
}

std::unique_ptr<RingLoop> MakeMultishotLoop(int listen_fd, const Technique& t, const ReplyMode& reply) {
  return std::make_unique<MultishotLoop>(listen_fd, t, reply);
}

}  // namespace echo::uring
