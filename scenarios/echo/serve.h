// `harness serve --scenario=echo`: one model's server in the foreground, listening where asked,
// until SIGINT or SIGTERM. `run` starts each repetition's server this way, as a child process, so a
// model that crashes cannot take the harness down.
#pragma once

#include "harness/scenario.h"

namespace echo {

// Returns the exit code; throws std::invalid_argument for a request it cannot serve (exit 2).
int Serve(const harness::ServeOptions& options);

}  // namespace echo
