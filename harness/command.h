// The harness's command line as a table: each subcommand (`run`, `list`, `serve`, `load`, `merge`,
// the hidden `measure`, and those a scenario adds, such as echo's `slurm`) is a Command in a file of
// its own that declares its flags once and registers itself:
//
//   HARNESS_REGISTER(harness::CommandEntry, std::make_unique<ListCommand>());
//
// main.cc only builds the parser from the table and looks the chosen command up. What several
// commands share (exit codes, where results go by default, the flags of `run` and `load`) is here
// and in run_flags.h.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "harness/registry.h"

namespace harness {

inline constexpr int kExitFailedRuns = 1;  // a measured run failed, or results went to a fallback file
inline constexpr int kExitUsage = 2;       // bad input: one line on stderr
inline constexpr int kExitInterrupted = 130;

// Bad input found by a command: main prints it as one line and exits 2.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

class Command {
 public:
  virtual ~Command() = default;
  virtual std::string name() const = 0;
  virtual std::string help() const = 0;  // "" hides the command from --help
  // Declares the command's flags on its subcommand `app`; their values land in the command's members.
  virtual void Declare(CLI::App& app) = 0;
  // Runs the command once its flags are parsed; `command_line` is the whole invocation, for the
  // results' context. Returns the exit code; throws std::invalid_argument for bad input.
  virtual int Execute(const CLI::App& app, const std::string& command_line) = 0;
};

using CommandEntry = std::unique_ptr<Command>;

inline const std::vector<CommandEntry>& Commands() { return Registry<CommandEntry>::All(); }

// parse()'s value; its std::invalid_argument becomes a UsageError naming `flag`.
template <typename Parse>
auto FlagValue(const char* flag, Parse parse) {
  try {
    return parse();
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(flag) + ": " + e.what());
  }
}

// `path` as the user meant it: relative to where they ran `bazel run`, not to the runfiles tree.
std::string UserPath(const std::string& path);
// results/FILE in the workspace (or the current folder outside `bazel run`).
std::string DefaultOut(const std::string& file = "latest.json");
// The scenarios that drive a server with a load generator: those `serve` and `load` reach.
std::vector<std::string> ClientScenarioNames();

}  // namespace harness
