// The flags `run` and `load` share (profile, timing, placement, and every scenario's parameters),
// and what both do with the runs they plan: measure them into a results file.
#pragma once

#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "harness/runner.h"
#include "harness/scenario.h"

namespace harness {

struct RunFlags {
  std::string scenarios, models, profile = "quick", duration, warmup, repetitions, redo, noise_threshold, filter, out;
  std::string cpus, server_cpus, client_cpus;
  std::map<std::string, std::string> params;  // --NAME=VALUE of the scenarios' parameters
};

// Declares the flags on `cmd`. With `with_model` (run): --scenario, --model, --cpus, --server-cpus
// and every scenario's parameters; without (load): the client scenarios' parameters only.
void AddRunFlags(CLI::App* cmd, RunFlags& flags, bool with_model);

// The options the flags ask for; throws std::invalid_argument naming the flag. `run` splits the
// CPUs by default; `load` (is_load) pins nothing unless told (its server may be anywhere).
Options ToOptions(const RunFlags& flags, bool is_load = false);

// Measures `runs` into `out_path`, printing progress and the summary; the first Ctrl-C ends the
// run at the end of the current window, keeping what finished. Returns the exit code.
int ExecuteRuns(std::vector<PlannedRun>& runs, const std::string& out_path, const std::string& profile,
                const std::string& command_line, const Schedule* schedule = nullptr);

}  // namespace harness
