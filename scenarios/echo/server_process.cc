#include "scenarios/echo/server_process.h"

#include <chrono>
#include <stdexcept>
#include <vector>

#include "scenarios/echo/server.h"

namespace echo {
namespace {

using namespace std::chrono_literals;

// Reads "listening on HOST:PORT" from a freshly started server.
harness::Endpoint AwaitListening(harness::ChildProcess& server) {
  // Generous: a pool of 10,000 processes takes a while to fork.
  const auto line = server.ReadLine(60s);
  const std::string prefix = "listening on ";
  if (!line || line->rfind(prefix, 0) != 0) {
    server.Stop(1s);
    std::string why =
        server.exit_description().empty() ? "no 'listening on' line within 60 s" : server.exit_description();
    const std::string tail = server.StderrTail();
    throw std::runtime_error("server did not start: " + why + (tail.empty() ? "" : ": " + tail));
  }
  return harness::ParseEndpoint(line->substr(prefix.size()), false);
}

}  // namespace

std::string Server::ExitReason() const {
  if (!child || child->Running()) return "";
  const std::string tail = child->StderrTail();
  return "server died during the run: " + child->exit_description() + (tail.empty() ? "" : ": " + tail);
}

Server StartServer(const harness::RunSpec& run) {
  Server server;
  if (run.target) {
    server.target = harness::ParseEndpoint(*run.target, false);
    if (run.server_pid) server.sampled = *run.server_pid;
    return server;
  }
  std::vector<std::string> argv = {run.self_path, "serve", "--scenario=echo", "--model=" + run.model,
                                   "--listen=127.0.0.1:0"};
  for (const std::string& key : ServerParams()) {
    if (!run.params.contains(key)) continue;
    const nlohmann::json& value = run.params[key];
    argv.push_back("--" + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));
  }
  server.child = std::make_unique<harness::ChildProcess>(argv, run.placement.server);
  server.target = AwaitListening(*server.child);
  server.sampled = server.child->pid();
  return server;
}

}  // namespace echo
