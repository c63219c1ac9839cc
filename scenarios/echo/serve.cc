#include "scenarios/echo/serve.h"

#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <stdexcept>

#include "scenarios/echo/plan.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

// The server's configuration from serve's flags, each checked.
ServerConfig ConfigOf(const ModelEntry& model, const std::map<std::string, std::string>& params) {
  ServerConfig config;
  if (auto w = params.find("workers"); w != params.end()) {
    config.workers = ParseParam("workers", w->second).get<int>();
  }
  if (auto r = params.find("reply"); r != params.end()) {
    config.reply = ReplyMode::Parse(ParseParam("reply", r->second).get<std::string>());
  }
  if (auto w = params.find("work"); w != params.end()) {
    ParseParam("work", w->second);  // the requests carry their work: the server needs to know only that they do
    if (params.count("transport") && params.at("transport") == "udp")
      throw std::invalid_argument("--work: TCP only, for now");
    config.work = true;
  }
  if (auto v = params.find("variant"); v != params.end()) {
    if (!FindVariant(model, v->second)) {
      std::string names;
      for (const Variant& x : model.variants) names += (names.empty() ? "" : ", ") + x.name;
      throw std::invalid_argument(
          "--variant: model '" + model.name + "' has " +
          (names.empty() ? "no variants" : "the variants " + names + ", not '" + v->second + "'"));
    }
    config.variant = v->second;
  }
  return config;
}

}  // namespace

int Serve(const harness::ServeOptions& options) {
  const ModelEntry* model = FindModel(options.model);
  if (model == nullptr) throw std::invalid_argument("unknown model '" + options.model + "' for echo (see: list)");
  const ServerConfig config = ConfigOf(*model, options.params);
  // Block the stop signals before any thread exists, so every thread inherits the mask and the
  // main thread alone takes them in sigwait().
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const bool udp =
      options.params.count("transport") && ParseParam("transport", options.params.at("transport")) == "udp";
  if (udp && !model->make_udp) throw std::invalid_argument("model '" + model->name + "' has no UDP server (see: list)");
  uint16_t port = 0;
  int fd = -1;
  try {
    fd = udp ? BindUdp(options.listen.host, options.listen.port, &port)
             : Listen(options.listen.host, options.listen.port, &port);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
  auto server = (udp ? model->make_udp : model->make)(config);
  try {
    server->Start(fd);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());  // e.g. io_uring refused by the kernel: one line, exit 2
  }
  const std::string address = harness::Endpoint{options.listen.host, port}.ToString();
  if (options.on_listening) options.on_listening(address);
  std::cout << "listening on " << address << std::endl;
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Stop();
  return 0;
}

}  // namespace echo
