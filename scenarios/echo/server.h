// An echo server model, and the registry of models. A model registers with one line
// (harness/registry.h):
//
//   HARNESS_REGISTER(ModelEntry, {"threads", "a thread per connection, blocking I/O", kNoWorkers,
//                                 &MakeServer<ThreadsServer>, nullptr});
//
// The third field says what `--workers` means to the model and its default list; the last makes
// its UDP server (nullptr: none).
//
// The harness starts every model the same way (`harness serve`): it binds and listens, prints the
// address, calls Start() with the listening socket, waits for SIGINT or SIGTERM, and calls Stop().
// Signals are blocked in the calling thread before Start(), so threads a model creates inherit that.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "harness/registry.h"

namespace echo {

struct ServerConfig {
  int workers = 1;  // threads or processes, for models that take it
};

class EchoServer {
 public:
  virtual ~EchoServer() = default;
  // Takes ownership of listen_fd (bound, listening, blocking). Returns once the server accepts.
  virtual void Start(int listen_fd) = 0;
  // Ends every connection, joins every thread it started, closes every descriptor. Called once.
  virtual void Stop() = 0;
};

struct Workers {
  const char* default_list;  // nullptr: the model takes no workers
  bool one_connection_each;  // a worker serves one connection at a time (pools): more wait
};
inline constexpr Workers kNoWorkers{nullptr, false};

using ServerFactory = std::unique_ptr<EchoServer> (*)(const ServerConfig&);

struct ModelEntry {
  std::string name;
  std::string description;
  Workers workers;
  ServerFactory make;      // TCP: Start() gets a listening stream socket
  ServerFactory make_udp;  // UDP: Start() gets a bound datagram socket; nullptr where UDP makes no sense
};

inline const std::vector<ModelEntry>& Models() { return harness::Registry<ModelEntry>::All(); }
inline const ModelEntry* FindModel(const std::string& name) { return harness::Registry<ModelEntry>::Find(name); }

// Creates a TCP socket bound to host:port and listening (backlog SOMAXCONN, SO_REUSEADDR).
// Throws std::runtime_error with the reason. *bound_port receives the port actually bound.
int Listen(const std::string& host, uint16_t port, uint16_t* bound_port);
// The same for UDP: a bound datagram socket with a 4 MiB receive buffer (bursts of replies to
// thousands of clients overflow the default).
int BindUdp(const std::string& host, uint16_t port, uint16_t* bound_port);

// Sets TCP_NODELAY: without it Nagle and delayed ACKs add ~40 ms stalls to request/response.
void SetNoDelay(int fd);

template <typename T>
std::unique_ptr<EchoServer> MakeServer(const ServerConfig& config) {
  return std::make_unique<T>(config);
}

}  // namespace echo
