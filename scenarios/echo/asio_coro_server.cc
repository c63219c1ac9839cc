// `asio_coro`: Boost.Asio with C++20 coroutines, in the style of Asio's cpp20 echo_server example:
// a coroutine per connection reading and writing as if blocking. Same threading as `asio`. With
// --work, the coroutine reads whole requests, burns each one's CPU and co_awaits a steady_timer for
// its wait.
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
using asio::awaitable;
using asio::ip::tcp;
using asio::ip::udp;

// `reply` is the server's, which outlives its coroutines.
awaitable<void> Serve(tcp::socket socket, const ReplyMode& reply) {
  char buffer[kBufferSize];  // lives in the coroutine frame
  const size_t room = reply.headroom();
  boost::system::error_code ec;
  while (true) {
    const size_t n = co_await socket.async_read_some(asio::buffer(buffer + room, sizeof buffer - room),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(socket, asio::buffer(buffer, reply.Make(buffer, n)),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

// --work: whole requests after the reply's headroom, each answered in place, then consumed.
awaitable<void> ServeWork(tcp::socket socket, const ReplyMode& reply, bool blocking) {
  char buffer[kBufferSize];
  const size_t room = reply.headroom(), capacity = sizeof buffer - room;
  char* const in = buffer + room;
  size_t have = 0;
  asio::steady_timer timer(socket.get_executor());
  boost::system::error_code ec;
  while (true) {
    WorkHeader h;
    const WorkHeader::Read read = WorkHeader::From(in, have, capacity, &h);
    if (read == WorkHeader::Read::kBad) co_return;  // not --work's protocol
    if (read == WorkHeader::Read::kNeedMore || have < h.length) {
      have += co_await socket.async_read_some(asio::buffer(in + have, capacity - have),
                                              asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      continue;
    }
    BurnCpu(h.cpu_ns);
    if (blocking) BlockFor(h.wait_ns);  // the loop's other coroutines wait too
    if (!blocking && h.wait_ns > 0) {
      timer.expires_after(std::chrono::nanoseconds(h.wait_ns));
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
    h.WriteReply(in);
    co_await asio::async_write(socket, asio::buffer(buffer, reply.Make(buffer, h.length)),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    std::memmove(in, in + h.length, have - h.length);
    have -= h.length;
  }
}

class AsioCoroServer final : public EchoServer {
 public:
  explicit AsioCoroServer(const ServerConfig& config)
      : reply_(config.reply), work_(config.work), blocking_(config.variant == "blocking"), pool_(config.workers) {}

  void Start(int listen_fd) override {
    pool_.Adopt(listen_fd);
    for (int i = 0; i < kAsioAcceptsInFlight; ++i) asio::co_spawn(pool_.first(), Accept(), asio::detached);
    pool_.Run();
  }

  void Stop() override { pool_.Stop(); }

 private:
  awaitable<void> Accept() {
    boost::system::error_code ec;
    asio::steady_timer back_off(pool_.first());
    while (pool_.acceptor().is_open()) {
      tcp::socket socket(pool_.next());
      co_await pool_.acceptor().async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec && OutOfResources(ec.value())) {  // the listener stays readable: accept again later
        back_off.expires_after(kAcceptBackOff);
        co_await back_off.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      if (ec) continue;
      socket.set_option(tcp::no_delay(true));
      // co_spawn from the socket's own thread: spawning onto a context from a thread that is not
      // running it was reported to crash on Boost 1.74.
      auto executor = socket.get_executor();
      asio::post(executor, [this, socket = std::move(socket)]() mutable {
        auto executor = socket.get_executor();
        asio::co_spawn(executor,
                       work_ ? ServeWork(std::move(socket), reply_, blocking_) : Serve(std::move(socket), reply_),
                       asio::detached);
      });
    }
  }

  const ReplyMode reply_;
  const bool work_;
  const bool blocking_;
  AsioContextPool pool_;
};

// UDP: one coroutine on one event-loop thread, receive -> reply -> send, written as a loop.
// `workers` does not apply: a socket's operations run on its one context.
class AsioCoroUdpServer final : public EchoServer {
 public:
  explicit AsioCoroUdpServer(const ServerConfig& config) : reply_(config.reply), pool_(1), socket_(pool_.first()) {}

  void Start(int fd) override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    socket_.assign(addr.ss_family == AF_INET6 ? udp::v6() : udp::v4(), fd);
    asio::co_spawn(pool_.first(), Serve(), asio::detached);
    pool_.Run();
  }

  void Stop() override { pool_.Stop(); }

 private:
  awaitable<void> Serve() {
    char buffer[ReplyMode::kDatagramBuffer];
    const size_t room = reply_.headroom();
    udp::endpoint peer;
    boost::system::error_code ec;
    while (true) {
      const size_t n = co_await socket_.async_receive_from(asio::buffer(buffer + room, sizeof buffer - room), peer,
                                                           asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) continue;  // e.g. an ICMP error of an earlier reply
      // A reply the socket cannot take is lost, as UDP allows; the client counts it.
      co_await socket_.async_send_to(asio::buffer(buffer, reply_.Make(buffer, n)), peer,
                                     asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  const ReplyMode reply_;
  AsioContextPool pool_;
  udp::socket socket_;
};

}  // namespace

HARNESS_REGISTER(ModelEntry, {"asio_coro",
                              "Boost.Asio with C++20 coroutines, `workers` event-loop threads",
                              Workers{"1", false},
                              &MakeServer<AsioCoroServer>,
                              &MakeServer<AsioCoroUdpServer>,
                              {{"timer", "a request's wait (--work) co_awaits a steady_timer"},
                               {"blocking",
                                "a request's wait blocks the loop (--work): a blocking call inside an event loop, as a "
                                "blocking driver makes it"}}});

}  // namespace echo
