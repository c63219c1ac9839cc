// `asio_coro`: a C++20 coroutine per item awaits its download (a timer) and then parses, on the
// `workers` threads running the io_context; decoupled, the parse is posted from the coroutine.
#include <memory>
#include <thread>

#include "bazel/asio.h"
#include "scenarios/pipeline/executor.h"

namespace pipeline {
namespace {

namespace asio = boost::asio;

asio::awaitable<void> Item(const RunConfig& config, Recorder& recorder, int item, std::vector<ItemTimes>& times) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, config.downloads[item]);
  times[item].download_start = recorder.Now();
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  times[item].download_end = recorder.Now();
  if (config.decoupled) {
    asio::post(executor, [&config, &recorder, item, &times] { ParseItem(config, recorder, item, times); });
  } else {
    ParseItem(config, recorder, item, times);
  }
}

void RunAsioCoro(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  asio::io_context context(config.workers);
  // Spawned before any thread runs the context: no co_spawn from a foreign thread (Boost 1.74).
  for (int i = 0; i < config.workload.items; ++i) {
    asio::co_spawn(context, Item(config, recorder, i, times), asio::detached);
  }
  std::vector<std::thread> threads;
  for (int w = 0; w < config.workers; ++w) threads.emplace_back([&context] { context.run(); });
  for (auto& t : threads) t.join();
}

}  // namespace

HARNESS_REGISTER(ExecutorEntry, {"asio_coro", "a C++20 coroutine per item awaiting a timer, on `workers` threads",
                                 kTakesWorkers | kHasModes, RunAsioCoro});

}  // namespace pipeline
