#include "harness/run_flags.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>

#include "harness/command.h"
#include "harness/params.h"
#include "harness/placement.h"
#include "harness/process_usage.h"
#include "harness/results.h"

namespace harness {
namespace {

// The parameters of every scenario, or of the client scenarios only (`load`).
std::set<std::string> AllParamNames(bool clients_only) {
  std::set<std::string> names;
  for (const auto& s : Scenarios()) {
    if (clients_only && !s->has_client()) continue;
    for (const auto& p : s->params()) names.insert(p.name);
  }
  return names;
}

// The first Ctrl-C ends the run at the end of the current window, keeping what finished; a second
// one ends the harness at once (its children die with it: PR_SET_PDEATHSIG).
void OnSignal(int signal_number) {
  if (g_interrupted.exchange(true)) {
    signal(signal_number, SIG_DFL);
    raise(signal_number);
  }
}

}  // namespace

void AddRunFlags(CLI::App* cmd, RunFlags& f, bool with_model) {
  cmd->add_option("--profile", f.profile, "smoke | quick | full: default durations, repetitions, parameters")
      ->check(CLI::IsMember({"smoke", "quick", "full"}));
  if (with_model) {
    cmd->add_option("--scenario", f.scenarios, "comma list of scenarios (default: all)");
    cmd->add_option("--model", f.models, "comma list of models (default: all of each scenario)");
  }
  cmd->add_option("--duration", f.duration, "measured time per repetition, e.g. 2s, 500ms");
  cmd->add_option("--warmup", f.warmup, "unmeasured time before each repetition");
  cmd->add_option("--repetitions", f.repetitions, "repetitions per run (aggregates need 2+)");
  cmd->add_option("--redo", f.redo,
                  "repetitions per run that may be measured again when other processes or the hypervisor took more "
                  "than --noise-threshold of their CPUs (default: as many as --repetitions, and 0 for `load`: loads "
                  "that run side by side are merged repetition by repetition; 0: keep noisy ones)");
  cmd->add_option("--noise-threshold", f.noise_threshold,
                  "share of the CPUs under test others may take before a repetition counts as noisy (default 5%)");
  cmd->add_option("--filter", f.filter, "regex: only runs whose name matches");
  cmd->add_option("--out", f.out, "results file (default: results/latest.json in the workspace)");
  if (with_model) {
    cmd->add_option("--cpus", f.cpus,
                    "split (default: server and load generator on disjoint CPUs) or shared (nothing pinned)");
    cmd->add_option("--server-cpus", f.server_cpus, "CPUs of the server, pipeline and micro-benchmarks, e.g. 0,2-3");
  }
  cmd->add_option("--client-cpus", f.client_cpus, "CPUs of the load generator, e.g. 1");
  for (const std::string& name : AllParamNames(!with_model)) {
    std::string help;
    std::optional<std::string> implicit;
    for (const auto& s : Scenarios()) {
      for (const auto& p : s->params()) {
        if (p.name == name && help.empty()) {
          help = p.help + " (comma list)";
          implicit = p.implicit;
        }
      }
    }
    CLI::Option* option = cmd->add_option_function<std::string>(
        "--" + name, [&f, name](const std::string& v) { f.params[name] = v; }, help);
    if (implicit) {  // may be given bare: the callback then sees the implicit value
      option->expected(0, 1)->default_str(*implicit)->run_callback_for_default();
      option->each([&f, name, implicit](const std::string& v) { f.params[name] = v.empty() ? *implicit : v; });
    }
  }
}

Options ToOptions(const RunFlags& f, bool is_load) {
  Options o;
  o.cpus_mode = !f.cpus.empty() ? f.cpus : is_load && f.client_cpus.empty() ? "shared" : "split";
  o.server_cpus = f.server_cpus;
  o.client_cpus = f.client_cpus;
  o.profile = f.profile;
  o.params = f.params;
  o.filter = f.filter;
  o.self_path = SelfExecutable();
  if (!f.models.empty()) o.models = SplitList(f.models);
  // Each value's error names its flag; a window shorter than 10 ms measures the clock, not a model.
  if (!f.duration.empty()) {
    o.duration = FlagValue("--duration", [&] { return ParseDuration(f.duration, std::chrono::milliseconds(10)); });
  }
  if (!f.warmup.empty()) o.warmup = FlagValue("--warmup", [&] { return ParseDuration(f.warmup, Duration(0)); });
  if (!f.repetitions.empty()) {
    o.repetitions = FlagValue("--repetitions", [&] { return static_cast<int>(ParseCount(f.repetitions, 1, 1000)); });
  }
  if (!f.redo.empty()) o.redo = FlagValue("--redo", [&] { return static_cast<int>(ParseCount(f.redo, 0, 1000)); });
  if (!f.noise_threshold.empty()) {
    o.noise_threshold = FlagValue("--noise-threshold", [&] { return ParseShare(f.noise_threshold); });
  }
  return o;
}

int ExecuteRuns(std::vector<PlannedRun>& runs, const std::string& out_path, const std::string& profile,
                const std::string& command_line, const Schedule* schedule) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(out_path).parent_path(), ec);
  std::vector<const Scenario*> scenarios;
  for (const auto& run : runs) {
    if (std::find(scenarios.begin(), scenarios.end(), run.scenario) == scenarios.end())
      scenarios.push_back(run.scenario);
  }
  nlohmann::json context = MakeContext(command_line, profile, scenarios);
  for (const auto& run : runs) context["placement"][run.spec.scenario] = run.spec.placement.ToJson();
  std::unique_ptr<ResultsWriter> writer;
  try {
    writer = std::make_unique<ResultsWriter>(out_path, std::move(context));
  } catch (const std::runtime_error& e) {
    throw UsageError(std::string("--out: ") + e.what());
  }
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  int failures = 0;
  try {
    failures = RunAll(runs, *writer, schedule);
  } catch (const std::runtime_error& e) {  // the results file and its fallback both failed
    std::cerr << "harness: error: " << e.what() << "\n";
    return kExitFailedRuns;
  }
  std::cout << SummaryTable(writer->document()) << "\nresults: " << writer->path() << "\n";
  if (g_interrupted) {
    std::cerr << "harness: interrupted; the results file holds every finished repetition\n";
    return kExitInterrupted;
  }
  if (writer->fell_back()) {
    std::cerr << "harness: error: the results could not be written to " << out_path << "; they are in "
              << writer->path() << "\n";
  }
  return failures || writer->fell_back() ? kExitFailedRuns : 0;
}

}  // namespace harness
