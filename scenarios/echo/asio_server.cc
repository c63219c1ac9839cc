// `asio`: Boost.Asio asynchronous callbacks, in the style of Asio's async_tcp_echo_server example.
// `workers` event-loop threads, one io_context each (see asio_context_pool.h for why). With --work,
// a session reads whole requests, burns each one's CPU in its handler (run to completion, as an
// Asio handler that computes does) and waits on a steady_timer, then writes the reply.
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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const ReplyMode& reply) : socket_(std::move(socket)), reply_(reply) {}

  void Read() {
    socket_.async_read_some(asio::buffer(buffer_.data() + reply_.headroom(), buffer_.size() - reply_.headroom()),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (ec) return;
                              self->Write(self->reply_.Make(self->buffer_.data(), n));
                            });
  }

 private:
  void Write(size_t n) {
    asio::async_write(socket_, asio::buffer(buffer_.data(), n),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (!ec) self->Read();
                      });
  }

  tcp::socket socket_;
  const ReplyMode& reply_;  // the server's, which outlives its sessions
  std::array<char, kBufferSize> buffer_;
};

// --work: the requests after the reply's headroom in the buffer, `have` bytes; the reply to the one
// at their front is made in place, and it is consumed once the reply is written.
class WorkSession : public std::enable_shared_from_this<WorkSession> {
 public:
  WorkSession(tcp::socket socket, const ReplyMode& reply, bool blocking)
      : socket_(std::move(socket)), reply_(reply), blocking_(blocking), timer_(socket_.get_executor()) {}

  // Serves the request at the front if it is whole, else reads more.
  void Next() {
    const WorkHeader::Read read = WorkHeader::From(in(), have_, capacity(), &current_);
    if (read == WorkHeader::Read::kBad) return;  // not --work's protocol: the session ends
    if (read == WorkHeader::Read::kNeedMore || have_ < current_.length) return Read();
    BurnCpu(current_.cpu_ns);
    if (blocking_) BlockFor(current_.wait_ns);  // the loop's other sessions wait too
    if (blocking_ || current_.wait_ns == 0) return Write();
    timer_.expires_after(std::chrono::nanoseconds(current_.wait_ns));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Write();
    });
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

  void Write() {
    current_.WriteReply(in());
    asio::async_write(socket_, asio::buffer(buffer_.data(), reply_.Make(buffer_.data(), current_.length)),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (ec) return;
                        const size_t length = self->current_.length;
                        std::memmove(self->in(), self->in() + length, self->have_ - length);
                        self->have_ -= length;
                        self->Next();
                      });
  }

  tcp::socket socket_;
  const ReplyMode& reply_;
  const bool blocking_;
  asio::steady_timer timer_;
  WorkHeader current_;
  size_t have_ = 0;
  std::array<char, kBufferSize> buffer_;
};

class AsioServer final : public EchoServer {
 public:
  explicit AsioServer(const ServerConfig& config)
      : reply_(config.reply), work_(config.work), blocking_(config.variant == "blocking"), pool_(config.workers) {}

  void Start(int listen_fd) override {
    pool_.Adopt(listen_fd);
    pool_.AcceptEach([this](tcp::socket socket) { Serve(std::move(socket)); });
    pool_.Run();
  }

  void Stop() override { pool_.Stop(); }

 private:
  // The first read starts on the session's own thread: its context need not be the acceptor's.
  void Serve(tcp::socket socket) {
    auto executor = socket.get_executor();
    if (work_) {
      asio::post(executor,
                 [session = std::make_shared<WorkSession>(std::move(socket), reply_, blocking_)] { session->Next(); });
    } else {
      asio::post(executor, [session = std::make_shared<Session>(std::move(socket), reply_)] { session->Read(); });
    }
  }

  const ReplyMode reply_;
  const bool work_;
  const bool blocking_;
  AsioContextPool pool_;
};

// UDP: one socket served by one event-loop thread, receive -> reply (--reply) -> send -> receive.
// `workers` does not apply: a socket's handlers run on its one context.
class AsioUdpServer final : public EchoServer {
 public:
  explicit AsioUdpServer(const ServerConfig& config) : reply_(config.reply), pool_(1), socket_(pool_.first()) {}

  void Start(int fd) override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    socket_.assign(addr.ss_family == AF_INET6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), fd);
    Receive();
    pool_.Run();
  }

  void Stop() override { pool_.Stop(); }

 private:
  void Receive() {
    const size_t room = reply_.headroom();
    socket_.async_receive_from(asio::buffer(buffer_.data() + room, buffer_.size() - room), peer_,
                               [this](boost::system::error_code ec, size_t n) {
                                 if (ec == asio::error::operation_aborted) return;
                                 if (ec) return Receive();
                                 socket_.async_send_to(asio::buffer(buffer_.data(), reply_.Make(buffer_.data(), n)),
                                                       peer_, [this](boost::system::error_code, size_t) { Receive(); });
                               });
  }

  const ReplyMode reply_;
  AsioContextPool pool_;
  asio::ip::udp::socket socket_;
  asio::ip::udp::endpoint peer_;
  std::array<char, ReplyMode::kDatagramBuffer> buffer_;
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"asio",
                              "Boost.Asio callbacks, `workers` event-loop threads (an io_context each)",
                              Workers{"1", false},
                              &MakeServer<AsioServer>,
                              &MakeServer<AsioUdpServer>,
                              {{"timer", "a request's wait (--work) on a steady_timer, the loop serving others"},
                               {"blocking",
                                "a request's wait blocks the loop (--work): a blocking call inside an event loop, as a "
                                "blocking driver makes it"}}});

}  // namespace echo
