// `asio`: Boost.Asio asynchronous callbacks. `workers` event-loop threads, each running its own
// io_context; the acceptor hands each new connection to the next context in turn.
//
// Why one io_context per thread rather than one shared by all threads: a connection's handlers then
// always run on one thread, so a session needs no strand and no locking, and each context is created
// with concurrency hint 1 so Asio drops its internal locks. The price is static balancing, which a
// uniform echo load does not punish.
#include <sys/socket.h>

#include <array>
#include <memory>
#include <thread>
#include <vector>

#include "bazel/asio.h"
#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void Read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (ec) return;
                              UpperCase(self->buffer_.data(), n);
                              self->Write(n);
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
  std::array<char, kBufferSize> buffer_;
};

class AsioServer final : public EchoServer {
 public:
  explicit AsioServer(const ServerConfig& config) {
    for (int i = 0; i < config.workers; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
    acceptor_ = std::make_unique<tcp::acceptor>(*contexts_[0]);
  }

  void Start(int listen_fd) override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    acceptor_->assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), listen_fd);
    Accept();
    for (auto& context : contexts_) threads_.emplace_back([&context] { context->run(); });
  }

  void Stop() override {
    guards_.clear();
    for (auto& context : contexts_) context->stop();
    for (auto& t : threads_) t.join();
    // Destroying the contexts destroys the pending handlers, and with them every session.
    acceptor_.reset();
    contexts_.clear();
  }

 private:
  void Accept() {
    asio::io_context& next = *contexts_[next_++ % contexts_.size()];
    acceptor_->async_accept(next, [this](boost::system::error_code ec, tcp::socket socket) {
      if (!acceptor_->is_open()) return;
      if (!ec) {
        socket.set_option(tcp::no_delay(true));
        // The first read starts on the session's own thread: its context is not ours.
        auto executor = socket.get_executor();
        asio::post(executor, [session = std::make_shared<Session>(std::move(socket))] { session->Read(); });
      }
      Accept();
    });
  }

  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  size_t next_ = 0;
};

}  // namespace

ECHO_REGISTER_MODEL("asio", "Boost.Asio callbacks, `workers` event-loop threads (io_context per thread)",
                    true, AsioServer);

}  // namespace echo
