// `io_uring`: a liburing completion loop per worker thread, each with its own ring (ring.h) and a
// multishot accept on the shared listening socket; its variants (--variant) are one table
// (technique.h), its loops in loops.h. Where the kernel refuses io_uring (containers often do),
// Start() throws and the model is reported unavailable. Connections inherit TCP_NODELAY from the
// listening socket (Linux copies it at accept), which is how a connection accepted into the file
// table, with no descriptor to setsockopt, gets it.
#include <unistd.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "scenarios/echo/io_uring/loops.h"
#include "scenarios/echo/io_uring/technique.h"
#include "scenarios/echo/server.h"

namespace echo::uring {
namespace {

class IoUringServer final : public EchoServer {
 public:
  IoUringServer(const ServerConfig& config, bool udp)
      : workers_(config.workers),
        technique_(TechniqueOf(config.variant)),
        reply_(config.reply),
        udp_(udp),
        work_(config.work) {}

  void Start(int fd) override {
    io_uring probe{};
    if (const int rc = InitRing(probe, technique_); rc < 0) {
      close(fd);
      throw std::runtime_error(std::string("io_uring unavailable: ") + strerror(-rc));
    }
    io_uring_queue_exit(&probe);
    fd_ = fd;
    if (!udp_) SetNoDelay(fd_);  // inherited by every accepted connection
    for (int i = 0; i < workers_; ++i) {
      if (udp_) {
        loops_.push_back(MakeUdpLoop(fd, technique_, reply_));
      } else if (work_) {
        loops_.push_back(MakeWorkLoop(fd, technique_, reply_));
      } else if (technique_.multishot) {
        loops_.push_back(MakeMultishotLoop(fd, technique_, reply_));
      } else {
        loops_.push_back(MakeSingleLoop(fd, technique_, reply_));
      }
    }
    for (auto& loop : loops_) threads_.emplace_back([&loop] { loop->Run(); });
  }

  void Stop() override {
    for (auto& loop : loops_) loop->Wake();
    for (auto& t : threads_) t.join();
    loops_.clear();
    close(fd_);
  }

 private:
  const int workers_;
  const Technique technique_;
  const ReplyMode reply_;
  const bool udp_;
  const bool work_;
  int fd_ = -1;
  std::vector<std::unique_ptr<RingLoop>> loops_;
  std::vector<std::thread> threads_;
};

std::unique_ptr<EchoServer> MakeTcp(const ServerConfig& config) {
  return std::make_unique<IoUringServer>(config, false);
}
std::unique_ptr<EchoServer> MakeUdp(const ServerConfig& config) {
  return std::make_unique<IoUringServer>(config, true);
}

}  // namespace

HARNESS_REGISTER(ModelEntry, {"io_uring", "liburing completion loop per worker thread, multishot accept",
                              Workers{"1", false}, &MakeTcp, &MakeUdp, Variants()});

}  // namespace echo::uring
