#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "scenarios/echo/io_uring/buffer_ring.h"
#include "scenarios/echo/io_uring/loops.h"

namespace echo::uring {
namespace {

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
      single_buffer_.resize(ReplyMode::kDatagramBuffer);
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

}  // namespace

std::unique_ptr<RingLoop> MakeUdpLoop(int socket_fd, const Technique& t, const ReplyMode& reply) {
  return std::make_unique<UdpLoop>(socket_fd, t, reply);
}

}  // namespace echo::uring
