// `asio`: downloads are timers, so waiting holds no thread; parses run on the `workers` threads
// running the io_context: in the timer's handler (coupled) or posted from it (decoupled).
#include <memory>
#include <thread>

#include "bazel/asio.h"
#include "scenarios/pipeline/executor.h"

namespace pipeline {
namespace {

void RunAsio(const RunConfig& config, Recorder& recorder, std::vector<ItemTimes>& times) {
  boost::asio::io_context context(config.workers);
  for (int i = 0; i < config.workload.items; ++i) {
    auto timer = std::make_shared<boost::asio::steady_timer>(context, config.downloads[i]);
    times[i].download_start = recorder.Now();
    timer->async_wait([&, i, timer](boost::system::error_code) {
      times[i].download_end = recorder.Now();
      if (config.decoupled) {
        boost::asio::post(context, [&, i] { ParseItem(config, recorder, i, times); });
      } else {
        ParseItem(config, recorder, i, times);
      }
    });
  }
  // run() returns when no timer and no posted parse is left: every item is done.
  std::vector<std::thread> threads;
  for (int w = 0; w < config.workers; ++w) threads.emplace_back([&context] { context.run(); });
  for (auto& t : threads) t.join();
}

}  // namespace

HARNESS_REGISTER(ExecutorEntry, {"asio", "downloads as Asio timers, parses on `workers` threads running the io_context",
                                 kTakesWorkers | kHasModes, RunAsio});

}  // namespace pipeline
