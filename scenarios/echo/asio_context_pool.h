// What the Asio models share: `workers` io_contexts, one per thread, and an acceptor on the first.
//
// Why one io_context per thread rather than one shared by all threads: a connection's handlers then
// always run on one thread, so a session needs no strand and no lock, and each context is created
// with concurrency hint 1 so Asio can skip cross-thread wake-ups. The price is static balancing
// (round robin at accept), which a uniform echo load does not punish.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "bazel/asio.h"
#include "scenarios/echo/server.h"

namespace echo {

// Accepts kept in flight at once. With one, a loop busy with thousands of connections accepts one
// new connection per turn and a burst of 10k waits seconds in the backlog.
inline constexpr int kAsioAcceptsInFlight = 16;

class AsioContextPool {
 public:
  explicit AsioContextPool(int threads) {
    for (int i = 0; i < threads; ++i) {
      contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
    acceptor_ = std::make_unique<boost::asio::ip::tcp::acceptor>(*contexts_[0]);
  }

  // Adopts the listening socket into the acceptor (on the first context).
  void Adopt(int listen_fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    using boost::asio::ip::tcp;
    acceptor_->assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), listen_fd);
  }

  boost::asio::ip::tcp::acceptor& acceptor() { return *acceptor_; }

  // Accepts connections onto the contexts in turn, kAsioAcceptsInFlight at a time, and hands each,
  // TCP_NODELAY set, to `serve` on the acceptor's thread; out of descriptors, accepts again after
  // kAcceptBackOff (the listener stays readable). The callback style's accept loop.
  void AcceptEach(std::function<void(boost::asio::ip::tcp::socket)> serve) {
    serve_ = std::move(serve);
    for (int i = 0; i < kAsioAcceptsInFlight; ++i) AcceptOne();
  }
  boost::asio::io_context& first() { return *contexts_[0]; }
  // The context for the next connection, round robin. Called from the acceptor's thread only.
  boost::asio::io_context& next() { return *contexts_[next_++ % contexts_.size()]; }

  void Run() {
    for (auto& context : contexts_) threads_.emplace_back([&context] { context->run(); });
  }

  // Stops every loop and joins every thread. The contexts, and with them every pending handler
  // and the sessions those handlers own, go with the pool, after the owner's own sockets.
  void Stop() {
    guards_.clear();
    for (auto& context : contexts_) context->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  ~AsioContextPool() {
    acceptor_.reset();
    contexts_.clear();
  }

 private:
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  size_t next_ = 0;
  std::function<void(boost::asio::ip::tcp::socket)> serve_;  // AcceptEach's

  void AcceptOne() {
    acceptor_->async_accept(next(), [this](boost::system::error_code ec, boost::asio::ip::tcp::socket socket) {
      if (!acceptor_->is_open()) return;
      if (!ec) {
        socket.set_option(boost::asio::ip::tcp::no_delay(true));
        serve_(std::move(socket));
      } else if (OutOfResources(ec.value())) {
        auto timer = std::make_shared<boost::asio::steady_timer>(first(), kAcceptBackOff);
        timer->async_wait([this, timer](boost::system::error_code) { AcceptOne(); });
        return;
      }
      AcceptOne();
    });
  }
};

}  // namespace echo
