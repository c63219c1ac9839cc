// The harness's command line: its subcommands are the Command table (harness/command.h), one file
// each: run (the default, with no command), list, serve, load, merge, measure (hidden), and those
// the scenarios add (echo's slurm). This file builds the parser from the table, checks what no
// command may take, and hands the chosen command its flags.
//
// Exit codes: 0 success, 1 a measured run failed or the results could not be written where asked
// (they are kept in a file the message names), 2 bad input (one line on stderr), 130 interrupted.
#include <sys/resource.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <system_error>

#include "harness/command.h"
#include "harness/placement.h"
#include "harness/scenario.h"
#include "harness/text.h"

namespace harness {
namespace {

void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// The commands in the order --help lists them: run first, then by name.
std::vector<Command*> InHelpOrder() {
  std::vector<Command*> commands;
  for (const auto& c : Commands()) commands.push_back(c.get());
  std::sort(commands.begin(), commands.end(), [](const Command* a, const Command* b) {
    return std::make_pair(a->name() != "run", a->name()) < std::make_pair(b->name() != "run", b->name());
  });
  return commands;
}

// Parses argv into `app`; returns the exit code when parsing ends the program (help, a parse error).
std::optional<int> Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    // CLI11's messages can span lines; the contract is one line.
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    std::cerr << "harness: error: " << Printable(message) << " (see --help)\n";
    return kExitUsage;
  }
  return std::nullopt;
}

int Execute(Command& command, const CLI::App& app, const std::string& command_line) {
  try {
    return command.Execute(app, command_line);
  } catch (const std::invalid_argument& e) {  // a value echoed in a message is shown on one line
    std::cerr << "harness: error: " << Printable(e.what()) << "\n";
    return kExitUsage;
  } catch (const std::filesystem::filesystem_error& e) {
    std::error_code gone;
    const bool here = !std::filesystem::current_path(gone).empty();  // a folder deleted since the shell entered it?
    std::cerr << "harness: error: "
              << (gone || !here ? "the current folder no longer exists (deleted?): cd to one that does, or give absolute paths"
                       : Printable(e.what()))
              << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {  // nothing ends the harness with an abort
    std::cerr << "harness: error: " << Printable(e.what()) << "\n";
    return kExitFailedRuns;
  }
}

int Main(int argc, char** argv) {
  try {
    std::vector<const Scenario*> all;
    for (const auto& s : Scenarios()) all.push_back(s.get());
    CheckDeclarations(all);
  } catch (const std::logic_error& e) {
    std::cerr << "harness: a scenario's declarations cannot stand: " << e.what() << "\n";
    return kExitFailedRuns;
  }
  if (const std::string bad = BadArgument(argc, argv); !bad.empty()) {
    std::cerr << "harness: error: " << bad << " (see --help)\n";
    return kExitUsage;
  }
  RaiseOpenFileLimit();
  AvailableCpus();  // the affinity the harness started with, read before anything pins a thread
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  CLI::App app{
      "Concurrency harness: the same workloads under each concurrency model, side by side.\n"
      "With no command, runs the default suite (profile quick) into results/latest.json."};
  app.require_subcommand(0, 1);
  std::map<const CLI::App*, Command*> by_app;
  CLI::App* run = nullptr;
  for (Command* command : InHelpOrder()) {
    CLI::App* sub = app.add_subcommand(command->name(), command->help());
    if (command->help().empty()) sub->group("");
    command->Declare(*sub);
    by_app[sub] = command;
    if (command->name() == "run") run = sub;
  }
  if (const auto code = Parse(app, argc, argv)) return *code;
  const auto chosen = app.get_subcommands();
  CLI::App* sub = chosen.empty() ? run : chosen.front();  // no command: the default suite
  return Execute(*by_app.at(sub), *sub, command_line);
}

}  // namespace
}  // namespace harness

int main(int argc, char** argv) { return harness::Main(argc, argv); }
