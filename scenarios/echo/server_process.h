// The server of an echo run: a child process (`harness serve`) started for it and stopped after
// it, or, for `load`, a server elsewhere given by its address (and, on this host, its pid).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "harness/child_process.h"
#include "harness/params.h"
#include "harness/scenario.h"

namespace echo {

struct Server {
  std::unique_ptr<harness::ChildProcess> child;  // none for `load`
  harness::Endpoint target;
  std::optional<pid_t> sampled;  // whose process tree is sampled around each window

  // "" while it runs (or when it is not ours), else how it ended.
  std::string ExitReason() const;
};

// Starts the run's server (pinned to its placement) and waits until it says where it listens.
// Throws std::runtime_error with its last words when it does not start.
Server StartServer(const harness::RunSpec& run);

}  // namespace echo
