// An echo server model, and the registry of models. A model registers with one line
// (harness/registry.h):
//
//   HARNESS_REGISTER(ModelEntry, {"threads", "a thread per connection, blocking I/O", kNoWorkers,
//                                 &MakeServer<ThreadsServer>, nullptr});
//
// The third field says what `--workers` means to the model and its default list; the fifth makes
// its UDP server (nullptr: none); an optional sixth lists its variants (--variant), the default first.
//
// The harness starts every model the same way (`harness serve`): it binds and listens, prints the
// address, calls Start() with the listening socket, waits for SIGINT or SIGTERM, and calls Stop().
// Signals are blocked in the calling thread before Start(), so threads a model creates inherit that.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "harness/registry.h"
#include "scenarios/echo/protocol.h"

namespace echo {

// The parameters of a run that reach its server (`harness serve --NAME=VALUE`), beside the model.
inline const std::vector<std::string>& ServerParams() {
  static const std::vector<std::string> names = {"workers", "transport", "reply", "variant", "work"};
  return names;
}

struct ServerConfig {
  int workers = 1;      // threads or processes, for models that take it
  ReplyMode reply;      // what to send back (--reply)
  std::string variant;  // the model's variant (--variant); "" or a name of ModelEntry::variants
  bool work = false;    // messages carry their work (--work, work.h): read by header, work done, then replied
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

// A form of a model (--variant): a technique the model can do without, measured beside it.
struct Variant {
  std::string name;
  std::string description;
};

struct ModelEntry {
  std::string name;
  std::string description;
  Workers workers;
  ServerFactory make;                  // TCP: Start() gets a listening stream socket
  ServerFactory make_udp;              // UDP: Start() gets a bound datagram socket; nullptr where UDP makes no sense
  std::vector<Variant> variants = {};  // the first is the default; none: the model has one form
};

// The variant of `m` called `name`, or nullptr.
inline const Variant* FindVariant(const ModelEntry& m, const std::string& name) {
  for (const Variant& v : m.variants) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

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

// Out of descriptors or memory: accept() fails so until a connection ends. Every model then stops
// accepting for kAcceptBackOff (the listening socket stays readable, so retrying at once would
// spin) and tries again; the connections wait in the backlog meanwhile.
inline constexpr auto kAcceptBackOff = std::chrono::milliseconds(1);
bool OutOfResources(int error);  // EMFILE, ENFILE, ENOBUFS, ENOMEM

// accept4() for the blocking acceptors: the new descriptor, or -1 with errno set (after sleeping
// kAcceptBackOff when OutOfResources(errno)). Async-signal-safe (a pre-forked worker calls it).
int AcceptOrBackOff(int listen_fd, int flags);

template <typename T>
std::unique_ptr<EchoServer> MakeServer(const ServerConfig& config) {
  return std::make_unique<T>(config);
}

}  // namespace echo
