// `io_uring`: a liburing completion loop per worker thread, each with its own ring and a multishot
// accept on the shared listening socket. Each connection has one operation in flight at a time
// (recv, then send until the reply is out, then recv), so its one buffer is never shared.
//
// Rings are created on the thread that uses them, with SINGLE_ISSUER | DEFER_TASKRUN where the
// kernel has them (6.1+): completions are then processed only when this thread asks, with no
// inter-processor interrupts. Where the kernel refuses io_uring (containers often do), Start()
// throws and the model is reported unavailable.
#include <liburing.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

enum Op : uint64_t { kAccept = 1, kRecv = 2, kSend = 3, kWake = 4, kCancel = 5 };
constexpr uint64_t kOpMask = 7;

struct alignas(8) Connection {
  int fd;
  uint32_t sent = 0;
  uint32_t length = 0;
  char buf[kBufferSize];
};

int InitRing(io_uring& ring) {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(kRingEntries, &ring, &params);
  if (rc == -EINVAL) rc = io_uring_queue_init(kRingEntries, &ring, 0);  // an older kernel
  return rc;
}

class Loop {
 public:
  Loop(int listen_fd) : listen_fd_(listen_fd), wake_fd_(eventfd(0, EFD_CLOEXEC)) {}
  ~Loop() { close(wake_fd_); }

  void Wake() {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) {
      // An eventfd written once cannot be full.
    }
  }

  void Run() {
    if (const int rc = InitRing(ring_); rc < 0) return;  // probed in Start(): does not happen
    ArmAccept();
    Prepare(kWake, nullptr, [&](io_uring_sqe* sqe) { io_uring_prep_read(sqe, wake_fd_, &wake_value_, 8, 0); });
    while (!stopping_) Process(nullptr);
    Drain();
    io_uring_queue_exit(&ring_);
  }

 private:
  template <typename Fn>
  void Prepare(Op op, Connection* c, Fn&& fill) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // submission queue full: hand it to the kernel and take a fresh slot
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    fill(sqe);
    io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(c) | op);
  }

  void ArmAccept() {
    Prepare(kAccept, nullptr, [&](io_uring_sqe* sqe) {
      io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    });
  }

  void Recv(Connection* c) {
    Prepare(kRecv, c, [&](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, c->fd, c->buf, sizeof c->buf, 0); });
  }

  void Send(Connection* c) {
    Prepare(kSend, c, [&](io_uring_sqe* sqe) {
      io_uring_prep_send(sqe, c->fd, c->buf + c->sent, c->length - c->sent, MSG_NOSIGNAL);
    });
  }

  // Submits what is prepared, waits for at least one completion (or the timeout), handles them all.
  void Process(__kernel_timespec* timeout) {
    io_uring_cqe* first = nullptr;
    const int rc = io_uring_submit_and_wait_timeout(&ring_, &first, 1, timeout, nullptr);
    if (rc < 0 && rc != -ETIME && rc != -EINTR) {
      stopping_ = true;
      return;
    }
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      Complete(cqe->user_data, cqe->res, cqe->flags);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
  }

  void Complete(uint64_t data, int res, unsigned flags) {
    auto* c = reinterpret_cast<Connection*>(data & ~kOpMask);
    switch (static_cast<Op>(data & kOpMask)) {
      case kAccept:
        if (res >= 0) Open(res);
        if (!(flags & IORING_CQE_F_MORE) && !stopping_) ArmAccept();  // the kernel ended the multishot
        return;
      case kRecv:
        if (res <= 0) return Close(c);
        UpperCase(c->buf, static_cast<size_t>(res));
        c->sent = 0;
        c->length = static_cast<uint32_t>(res);
        return Send(c);
      case kSend:
        if (res < 0) return Close(c);
        c->sent += static_cast<uint32_t>(res);
        return c->sent < c->length ? Send(c) : Recv(c);
      case kWake:
        stopping_ = true;
        return;
      case kCancel:
        return;
    }
  }

  void Open(int fd) {
    SetNoDelay(fd);
    auto* c = new Connection;
    c->fd = fd;
    connections_.insert(c);
    Recv(c);
  }

  void Close(Connection* c) {
    close(c->fd);
    connections_.erase(c);
    delete c;
  }

  // Ends every connection and waits (bounded) for each one's last operation to complete, so that
  // no buffer is freed while the kernel may still write to it.
  void Drain() {
    Prepare(kCancel, nullptr, [&](io_uring_sqe* sqe) { io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY); });
    for (Connection* c : connections_) shutdown(c->fd, SHUT_RDWR);
    __kernel_timespec tick{0, 50'000'000};
    for (int i = 0; i < 40 && !connections_.empty(); ++i) Process(&tick);
    for (Connection* c : std::unordered_set<Connection*>(connections_)) Close(c);
  }

  const int listen_fd_;
  const int wake_fd_;
  io_uring ring_{};
  uint64_t wake_value_ = 0;
  bool stopping_ = false;
  std::unordered_set<Connection*> connections_;
};

class IoUringServer final : public EchoServer {
 public:
  explicit IoUringServer(const ServerConfig& config) : workers_(config.workers) {}

  void Start(int listen_fd) override {
    io_uring probe{};
    if (const int rc = InitRing(probe); rc < 0) {
      close(listen_fd);
      throw std::runtime_error(std::string("io_uring unavailable: ") + strerror(-rc));
    }
    io_uring_queue_exit(&probe);
    listen_fd_ = listen_fd;
    for (int i = 0; i < workers_; ++i) loops_.push_back(std::make_unique<Loop>(listen_fd));
    for (auto& loop : loops_) threads_.emplace_back([&loop] { loop->Run(); });
  }

  void Stop() override {
    for (auto& loop : loops_) loop->Wake();
    for (auto& t : threads_) t.join();
    loops_.clear();
    close(listen_fd_);
  }

 private:
  const int workers_;
  int listen_fd_ = -1;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"io_uring", "liburing completion loop per worker thread, multishot accept",
                              Workers{"1", false}, &MakeServer<IoUringServer>, nullptr});

}  // namespace echo
