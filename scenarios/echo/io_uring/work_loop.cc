// --work's io_uring loop, for every TCP variant: see loops.h.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "scenarios/echo/io_uring/loops.h"
#include "scenarios/echo/io_uring/tcp_loop.h"
#include "scenarios/echo/server.h"
#include "scenarios/echo/work.h"

namespace echo::uring {
namespace {

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
    work_cpu_ns_ += static_cast<int64_t>(c->current.cpu_ns);
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
    Connection* c = SendCompleted(p, res);
    if (c == nullptr) return;
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

}  // namespace echo::uring
