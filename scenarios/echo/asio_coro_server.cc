// `asio_coro`: Boost.Asio with C++20 coroutines, in the style of Asio's cpp20 echo_server example:
// a coroutine per connection reading and writing as if blocking. Same threading as `asio`.
#include <memory>

#include "bazel/asio.h"
#include "scenarios/echo/asio_context_pool.h"
#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

awaitable<void> Serve(tcp::socket socket) {
  char buffer[kBufferSize];  // lives in the coroutine frame
  boost::system::error_code ec;
  while (true) {
    const size_t n = co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    UpperCase(buffer, n);
    co_await asio::async_write(socket, asio::buffer(buffer, n), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

class AsioCoroServer final : public EchoServer {
 public:
  explicit AsioCoroServer(const ServerConfig& config) : pool_(config.workers) {}

  void Start(int listen_fd) override {
    pool_.Adopt(listen_fd);
    for (int i = 0; i < kAsioAcceptsInFlight; ++i) asio::co_spawn(pool_.first(), Accept(), asio::detached);
    pool_.Run();
  }

  void Stop() override { pool_.Stop(); }

 private:
  awaitable<void> Accept() {
    boost::system::error_code ec;
    while (pool_.acceptor().is_open()) {
      tcp::socket socket(pool_.next());
      co_await pool_.acceptor().async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) continue;
      socket.set_option(tcp::no_delay(true));
      // co_spawn from the socket's own thread: spawning onto a context from a thread that is not
      // running it was reported to crash on Boost 1.74.
      auto executor = socket.get_executor();
      asio::post(executor, [socket = std::move(socket)]() mutable {
        auto executor = socket.get_executor();
        asio::co_spawn(executor, Serve(std::move(socket)), asio::detached);
      });
    }
  }

  AsioContextPool pool_;
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"asio_coro", "Boost.Asio with C++20 coroutines, `workers` event-loop threads",
                              Workers{"1", false}, &MakeServer<AsioCoroServer>, nullptr});

}  // namespace echo
