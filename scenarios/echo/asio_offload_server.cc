// `asio_offload`: half-sync/half-async, how async servers run CPU-heavy or blocking handlers. The
// I/O is Asio's, on one event-loop thread; each request's handling goes to a pool of `workers`
// threads (boost::asio::thread_pool) and its reply is posted back to the loop, which writes it.
// Unlike `thread_pool` the workers are shared between requests, not held by connections: a
// connection waits for a worker only while it has a request, so none starves. With --work, a worker
// burns the request's CPU and sleeps its wait (it is held, as a blocking handler holds it); without,
// it makes the reply (the hand-off both ways is then the model's whole cost).
#include <array>
#include <chrono>
#include <cstring>
#include <memory>

#include "bazel/asio.h"
#include "scenarios/echo/asio_context_pool.h"
#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"
#include "scenarios/echo/work.h"

namespace echo {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// One connection, on the loop: reads, hands each request to the pool, writes the reply it posts
// back, then reads the next. The requests (after the reply's headroom) are `have` bytes of buffer_.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const ReplyMode& reply, bool work, asio::thread_pool& workers)
      : socket_(std::move(socket)), reply_(reply), work_(work), workers_(workers) {}

  void Next() {
    if (!work_) {
      if (have_ > 0) return Offload(have_);  // without work a read is a request, as in `asio`
      return Read();
    }
    const WorkHeader::Read read = WorkHeader::From(in(), have_, capacity(), &current_);
    if (read == WorkHeader::Read::kBad) return;  // not --work's protocol: the session ends
    if (read == WorkHeader::Read::kNeedMore || have_ < current_.length) return Read();
    Offload(current_.length);
  }

 private:
  char* in() { return buffer_.data() + reply_.headroom(); }
  size_t capacity() const { return buffer_.size() - reply_.headroom(); }

  void Read() {
    socket_.async_read_some(asio::buffer(in() + have_, capacity() - have_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (ec) return;
                              self->have_ += n;
                              self->Next();
                            });
  }

  // The request's `length` bytes go to a worker, which does its work and makes the reply in place;
  // the loop writes it. The buffer is the worker's meanwhile: the loop reads nothing more.
  void Offload(size_t length) {
    asio::post(workers_, [self = shared_from_this(), length] {
      if (self->work_) {
        BurnCpu(self->current_.cpu_ns);
        BlockFor(self->current_.wait_ns);
        self->current_.WriteReply(self->in());
      }
      const size_t n = self->reply_.Make(self->buffer_.data(), length);
      asio::post(self->socket_.get_executor(), [self, length, n] { self->Write(length, n); });
    });
  }

  void Write(size_t length, size_t n) {
    asio::async_write(socket_, asio::buffer(buffer_.data(), n),
                      [self = shared_from_this(), length](boost::system::error_code ec, size_t) {
                        if (ec) return;
                        std::memmove(self->in(), self->in() + length, self->have_ - length);
                        self->have_ -= length;
                        self->Next();
                      });
  }

  tcp::socket socket_;
  const ReplyMode& reply_;  // the server's, which outlives its sessions
  const bool work_;
  asio::thread_pool& workers_;
  WorkHeader current_;
  size_t have_ = 0;
  std::array<char, kBufferSize> buffer_;
};

class AsioOffloadServer final : public EchoServer {
 public:
  explicit AsioOffloadServer(const ServerConfig& config)
      : reply_(config.reply), work_(config.work), loop_(1), workers_(static_cast<size_t>(config.workers)) {}

  void Start(int listen_fd) override {
    loop_.Adopt(listen_fd);
    loop_.AcceptEach(
        [this](tcp::socket socket) { std::make_shared<Session>(std::move(socket), reply_, work_, workers_)->Next(); });
    loop_.Run();
  }

  // The loop first (no new request reaches the pool), then the pool: a worker in a request's work
  // finishes it (at most 1 s) and its reply is posted to a stopped loop, never run.
  void Stop() override {
    loop_.Stop();
    workers_.stop();
    workers_.join();
  }

 private:
  const ReplyMode reply_;
  const bool work_;
  AsioContextPool loop_;       // one event-loop thread: the I/O
  asio::thread_pool workers_;  // destroyed first: its pending handlers hold sessions of the loop's context
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"asio_offload",
                              "Boost.Asio I/O on one event loop, each request handled by a pool of `workers` "
                              "threads and its reply posted back (half-sync/half-async)",
                              Workers{"4", false}, &MakeServer<AsioOffloadServer>, nullptr});

}  // namespace echo
