// Echo's parameters and its plan: which runs a command line asks for, each value checked, and
// what cannot be run refused before any work (a size that no buffer or datagram holds, more
// connections than the open-files limit, a --target nothing answers on).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/scenario.h"

namespace echo {

// The SLO of a bare --capacity with no --slo.
inline constexpr const char* kDefaultSlo = "p99:2ms";

// One value of parameter `name` as the run's params hold it; throws std::invalid_argument naming
// the flag.
nlohmann::json ParseParam(const std::string& name, const std::string& value);

// The runs `options` select of `echo` (the scenario: its parameters and defaults).
std::vector<harness::RunSpec> PlanRuns(const harness::Scenario& echo, const harness::Options& options);

}  // namespace echo
