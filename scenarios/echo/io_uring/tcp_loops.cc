#include <sys/socket.h>

#include <cerrno>
#include <unordered_set>
#include <vector>

#include "scenarios/echo/io_uring/loops.h"
#include "scenarios/echo/io_uring/tcp_loop.h"
#include "scenarios/echo/server.h"

namespace echo::uring {
namespace {

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
    Connection* c = SendCompleted(p, res);
    if (c == nullptr) return;
    if (c->sent < reply_.headroom() + c->chunks.front().length) return Send(c);
    buffers_.Return(c->chunks.front().bid);
    c->chunks.erase(c->chunks.begin());
    c->sent = 0;
    if (!c->chunks.empty()) Send(c);
  }
};

}  // namespace

std::unique_ptr<RingLoop> MakeSingleLoop(int listen_fd, const Technique& t, const ReplyMode& reply) {
  return std::make_unique<SingleLoop>(listen_fd, t, reply);
}

std::unique_ptr<RingLoop> MakeMultishotLoop(int listen_fd, const Technique& t, const ReplyMode& reply) {
  return std::make_unique<MultishotLoop>(listen_fd, t, reply);
}

}  // namespace echo::uring
