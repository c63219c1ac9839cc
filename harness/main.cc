// The harness's command line: run (default), list, serve, load. See README.md.
//
// Exit codes: 0 success, 1 a measured run failed or the results could not be written where asked
// (they are kept in a file the message names), 2 bad input (one line on stderr), 130 interrupted.
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>

#include "harness/isolated.h"
#include "harness/merge.h"
#include "harness/output_file.h"
#include "harness/params.h"
#include "harness/placement.h"
#include "harness/process_usage.h"
#include "harness/results.h"
#include "harness/runner.h"
#include "harness/scenario.h"
#include "harness/server_usage.h"
#include "harness/slurm.h"
#include "harness/text.h"

namespace harness {
namespace {

constexpr int kExitFailedRuns = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;
constexpr double kLateStartS = 5;  // how late `load --start-at` may be and still start (clocks of hosts differ)

struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string DefaultOut(const std::string& file = "latest.json") {
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  return std::string(workspace ? workspace : ".") + "/results/" + file;
}

// Relative paths are relative to where the user ran `bazel run`, not to the runfiles tree.
std::string UserPath(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path[0] == '/' || cwd == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

// The scenarios `load` and `serve` reach: those that drive a server with a load generator.
std::vector<std::string> ClientScenarioNames() {
  std::vector<std::string> names;
  for (const auto& s : Scenarios()) {
    if (s->has_client()) names.push_back(s->name());
  }
  return names;
}

// The parameters of every scenario, or of the client scenarios only (`load`).
std::set<std::string> AllParamNames(bool clients_only) {
  std::set<std::string> names;
  for (const auto& s : Scenarios()) {
    if (clients_only && !s->has_client()) continue;
    for (const auto& p : s->params()) names.insert(p.name);
  }
  return names;
}

// Flags shared by run and load.
struct RunFlags {
  std::string scenarios, models, profile = "quick", duration, warmup, repetitions, filter, out;
  std::string cpus, server_cpus, client_cpus;
  std::map<std::string, std::string> params;
};

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

// `run` splits the CPUs by default; `load` pins nothing unless told (its server may be anywhere).
Options ToOptions(const RunFlags& f, bool is_load = false) {
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
  const auto flag = [](const char* name, auto parse) {
    try {
      return parse();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(name) + ": " + e.what());
    }
  };
  if (!f.duration.empty()) o.duration = flag("--duration", [&] { return ParseDuration(f.duration, std::chrono::milliseconds(10)); });
  if (!f.warmup.empty()) o.warmup = flag("--warmup", [&] { return ParseDuration(f.warmup, Duration(0)); });
  if (!f.repetitions.empty()) {
    o.repetitions = flag("--repetitions", [&] { return static_cast<int>(ParseCount(f.repetitions, 1, 1000)); });
  }
  return o;
}

// `load --start-at=UNIX_TIME [--start-every=DURATION]`: a time within a day of now. Parsed before the
// target is probed, so a bad time is its own error. Without --start-every the period is left 0 for
// DefaultPeriod.
Schedule ParseSchedule(const std::string& at, const std::string& every) {
  Schedule schedule;
  const double now = UnixSeconds();
  try {
    size_t used = 0;
    schedule.start_unix = std::stod(at, &used);
    if (used != at.size() || !std::isfinite(schedule.start_unix)) throw std::invalid_argument("");
  } catch (const std::exception&) {
    throw UsageError("--start-at: not a UNIX time in seconds: '" + at + "'");
  }
  if (std::abs(schedule.start_unix - now) > 86400) {
    throw UsageError(fmt::format("--start-at: {} is more than a day from now ({:.0f})", at, now));
  }
  // A start passed already would begin at once, apart from the loads it was meant to run with.
  if (schedule.start_unix < now - kLateStartS) {
    throw UsageError(fmt::format("--start-at: {} was {:.0f} s ago (now {:.0f}): the loads it was to start with have "
                                 "begun",
                                 at, now - schedule.start_unix, now));
  }
  if (!every.empty()) {
    try {
      schedule.period_s = std::chrono::duration<double>(ParseDuration(every, std::chrono::seconds(1))).count();
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--start-every: ") + e.what());
    }
  }
  return schedule;
}

// The default period leaves each repetition its warm-up, its window and 5 s for connecting and the
// extra warm-up a slow server takes.
double DefaultPeriod(const std::vector<PlannedRun>& runs) {
  double period = 0;
  for (const auto& run : runs) {
    period = std::max(period, std::chrono::duration<double>(run.spec.warmup + run.spec.duration).count() + 5);
  }
  return period;
}

// The first Ctrl-C ends the run at the end of the current window, keeping what finished; a second
// one ends the harness at once (its children die with it: PR_SET_PDEATHSIG).
void OnSignal(int signal_number) {
  if (g_interrupted.exchange(true)) {
    signal(signal_number, SIG_DFL);
    raise(signal_number);
  }
}

int Execute(std::vector<PlannedRun>& runs, const std::string& out_path, const std::string& profile,
            const std::string& command_line, const Schedule* schedule = nullptr) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(out_path).parent_path(), ec);
  std::vector<const Scenario*> scenarios;
  for (const auto& run : runs) {
    if (std::find(scenarios.begin(), scenarios.end(), run.scenario) == scenarios.end()) scenarios.push_back(run.scenario);
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

// A job's folder, new or empty: a used one holds another job's load-*.json, which the merge at the
// end of this job would count as its own.
void MakeFreshDirectory(const std::string& dir) {
  struct stat st {};
  if (lstat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw UsageError("--out: " + dir + " exists and is not a directory");
    std::error_code ec;
    if (!std::filesystem::is_empty(dir, ec) || ec) {
      throw UsageError("--out: " + dir + " is not empty (another job's files would be merged into this one's); name a "
                       "new folder");
    }
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw UsageError("--out: cannot create " + dir + ": " + ec.message());
}

// Runs `argv` (no shell: its words reach the program as they are) and returns its exit status, 127
// when it cannot be started.
int Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) throw std::runtime_error(argv[0] + " ended by signal " + std::to_string(WTERMSIG(status)));
  return WEXITSTATUS(status);
}

// `harness slurm`: checks what the job will ask of serve and load here, before anything reaches
// the cluster (a bad flag is exit 2 now, not a failed job later); writes DIR/job.sh, prints it, and
// submits it unless --dry-run.
int SlurmCommand(SlurmJob job, const std::string& out, bool dry_run, bool wait) {
  if (FindScenario("echo") == nullptr) throw UsageError("slurm: no echo scenario in this build");
  Options check;
  check.models = {job.model};
  check.params = job.serve;
  for (const auto& [name, value] : job.load) {
    if (name != "duration" && name != "warmup" && name != "repetitions") check.params[name] = value;
  }
  check.self_path = SelfExecutable();
  check.cpus_mode = "shared";
  RunFlags timing;  // parsed here for their errors only
  timing.duration = job.load.count("duration") ? job.load.at("duration") : "";
  timing.warmup = job.load.count("warmup") ? job.load.at("warmup") : "";
  timing.repetitions = job.load.count("repetitions") ? job.load.at("repetitions") : "";
  ToOptions(timing);
  PlanAll({"echo"}, check);
  if (job.harness.empty()) job.harness = SelfExecutable();
  job.harness = std::filesystem::absolute(job.harness).string();
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  job.dir = out.empty() ? DefaultOut(fmt::format("slurm-{}", now)) : UserPath(out);
  if (job.dir.size() > 5 && job.dir.substr(job.dir.size() - 5) == ".json") job.dir.resize(job.dir.size() - 5);
  job.dir = std::filesystem::absolute(job.dir).lexically_normal().string();
  const std::string script = BatchScript(job);  // refuses what cannot stand in it before anything is made
  MakeFreshDirectory(job.dir);
  const std::string script_path = job.dir + "/job.sh";
  try {
    WriteFileSafely(script_path, script);
  } catch (const std::runtime_error& e) {
    throw UsageError(std::string("--out: ") + e.what());
  }
  std::cout << "# " << script_path << "\n" << script << std::flush;
  std::vector<std::string> submit = {"sbatch", "--parsable"};
  if (wait) submit.push_back("--wait");
  submit.push_back(script_path);
  const std::string shown = std::string("sbatch --parsable") + (wait ? " --wait " : " ") + ShellWord(script_path);
  if (dry_run) {
    std::cout << "# --dry-run: not submitted; to submit: " << shown << "\n";
    return 0;
  }
  std::cout << "# " << shown << std::endl;
  const int status = Spawn(submit);
  if (status == 127) throw UsageError("slurm: sbatch not found (install slurm-wlm, or --dry-run)");
  if (wait) std::cout << "# results: " << job.dir << "/merged.json\n";
  return status == 0 ? 0 : kExitFailedRuns;
}

int ListCommand() {
  for (const auto& s : Scenarios()) {
    std::cout << s->name() << ": " << s->description() << "\n  models:\n";
    for (const auto& m : s->models()) std::cout << "    " << m.name << "  " << m.description << "\n";
    std::cout << "  parameters (smoke | quick | full defaults):\n";
    for (const auto& p : s->params()) {
      std::cout << "    --" << p.name << "  " << p.help << "  [";
      const char* sep = "";
      for (const char* profile : {"smoke", "quick", "full"}) {
        auto it = p.by_profile.find(profile);
        std::cout << sep << (it == p.by_profile.end() ? "-" : it->second);
        sep = " | ";
      }
      std::cout << "]\n";
    }
    std::cout << "  duration, warmup, repetitions:";
    for (const char* profile : {"smoke", "quick", "full"}) {
      std::cout << "  " << profile << " " << FormatDuration(s->default_duration(profile)) << ", "
                << FormatDuration(s->default_warmup(profile)) << ", " << s->default_repetitions(profile);
    }
    std::cout << "\n";
  }
  return 0;
}

int MergeCommand(const std::vector<std::string>& inputs, const std::string& out_path, const std::string& command_line,
                 const std::string& server_usage_path) {
  std::optional<ServerUsage> server_usage;
  if (!server_usage_path.empty()) {
    try {
      server_usage = ServerUsage{server_usage_path, ReadUsageLog(server_usage_path)};
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--server-usage: ") + e.what());
    }
  }
  std::vector<ResultsFile> files;
  std::set<std::pair<dev_t, ino_t>> seen;  // one file by two names (a hard link) is still one file
  for (const std::string& path : inputs) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw UsageError(path + ": cannot read: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw UsageError(path + ": not a regular file");
    if (!seen.insert({st.st_dev, st.st_ino}).second) throw UsageError(path + ": given twice (it would be counted twice)");
    std::ifstream in(path);
    if (!in) throw UsageError(path + ": cannot read");
    try {
      files.push_back({path, nlohmann::json::parse(in)});
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(path + ": not JSON (" + std::string(e.what()) + ")");
    }
  }
  nlohmann::json merged;
  try {
    merged = MergeResults(files, command_line, server_usage ? &*server_usage : nullptr);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("merge: an entry lacks a field a result has: ") + e.what());
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(out_path).parent_path(), ec);
  std::string written_to = out_path;
  try {
    ResultsWriter writer(out_path, merged["context"]);
    writer.AddAll(merged["benchmarks"].get<std::vector<nlohmann::json>>());
    written_to = writer.path();
  } catch (const std::runtime_error& e) {
    throw UsageError(std::string("--out: ") + e.what());
  }
  if (written_to != out_path) {
    std::cerr << "harness: error: the merged file could not be written to " << out_path << "; it is in " << written_to
              << "\n";
    return kExitFailedRuns;
  }
  int failed = 0;  // merged repetitions that cannot stand (a part failed, or the loads were apart)
  for (const auto& e : merged["benchmarks"]) {
    if (e.value("run_type", "") != "iteration" || !e["params"].contains("target")) continue;
    if (e.value("status", "") != "ok") ++failed;
  }
  std::cout << SummaryTable(merged) << "\nresults: " << out_path << "\n";
  return failed ? kExitFailedRuns : 0;
}

std::vector<std::string> AllScenarioNames() {
  std::vector<std::string> names;
  for (const auto& s : Scenarios()) names.push_back(s->name());
  return names;
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

  CLI::App app{"Concurrency harness: the same workloads under each concurrency model, side by side.\n"
               "With no command, runs the default suite (profile quick) into results/latest.json."};
  app.require_subcommand(0, 1);
  RunFlags run_flags;
  CLI::App* run = app.add_subcommand("run", "measure scenarios x models x parameters");
  AddRunFlags(run, run_flags, true);
  bool dry_run = false;
  run->add_flag("--dry-run", dry_run, "print the runs the flags select, one name a line, and measure nothing");
  run->allow_extras();  // --benchmark_* flags go to Google Benchmark (scenario micro)
  app.add_subcommand("list", "scenarios, models, parameters, profiles");

  std::string serve_scenario, serve_model, listen = "127.0.0.1:0";
  std::map<std::string, std::string> serve_params;
  CLI::App* serve = app.add_subcommand("serve", "run one server in the foreground until SIGINT/SIGTERM");
  serve->add_option("--scenario", serve_scenario, "scenario (default: the first with a server)");
  serve->add_option("--model", serve_model, "model")->required();
  serve->add_option("--listen", listen, "address to listen on, HOST:PORT (port 0: any)");
  serve->add_option_function<std::string>("--workers", [&](const std::string& v) { serve_params["workers"] = v; },
                                          "worker threads or processes");
  serve->add_option_function<std::string>("--transport", [&](const std::string& v) { serve_params["transport"] = v; },
                                          "tcp (default) or udp");
  serve->add_option_function<std::string>("--reply", [&](const std::string& v) { serve_params["reply"] = v; },
                                          "upper (default), same, or prefix:TEXT");
  serve->add_option_function<std::string>("--variant", [&](const std::string& v) { serve_params["variant"] = v; },
                                          "the model's variant (see: list; default its first)");
  std::string serve_cpus;
  serve->add_option("--server-cpus", serve_cpus, "pin the server (its threads and children) to these CPUs, e.g. 0");
  std::string serve_usage;
  serve->add_option("--usage", serve_usage,
                    "sample the server's CPU, peak memory, threads and processes every 100 ms into this file (for merge "
                    "--server-usage, when the loads run elsewhere)");

  std::vector<std::string> merge_inputs;
  std::string merge_out;
  CLI::App* merge = app.add_subcommand("merge", "merge result files; runs of concurrent `load`s of one server combine");
  merge->add_option("files", merge_inputs, "results files")->required();
  merge->add_option("--out", merge_out, "merged file (default: results/merged.json in the workspace)");
  std::string merge_server_usage;
  merge->add_option("--server-usage", merge_server_usage,
                    "the server's usage log (serve --usage): charge each merged repetition with its CPU");

  // Hidden: the runner's child for a scenario that measures in a fresh process (harness/isolated.h).
  std::string measure_spec;
  int measure_repetition = 0;
  CLI::App* measure = app.add_subcommand("measure", "")->group("");
  measure->add_option("--spec", measure_spec)->required();
  measure->add_option("--repetition", measure_repetition);

  RunFlags load_flags;
  std::string target, server_pid, target_name = "external", start_at, start_every;
  CLI::App* load = app.add_subcommand("load", "drive any echo server at --target and measure it");
  load->add_option("--target", target, "HOST:PORT of the server")->required();
  load->add_option("--server-pid", server_pid, "also sample this local process's CPU, RSS, threads");
  load->add_option("--name", target_name, "the server's model name in the results (default external)")
      ->check(CLI::Validator(
          [](const std::string& v) {
            const bool ok = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
            });
            return ok ? std::string() : "letters, digits, _ - . only: '" + v + "'";
          },
          "NAME", "name"));
  load->add_option("--start-at", start_at,
                   "UNIX time (seconds, wall clock) at which the first repetition starts; loads on other hosts "
                   "given the same time and flags measure together");
  load->add_option("--start-every", start_every,
                   "with --start-at: repetition k starts at START + k x this (default: the longest warm-up + "
                   "duration + 5s)");
  AddRunFlags(load, load_flags, false);

  SlurmJob slurm_job;
  std::string slurm_out;
  bool slurm_dry_run = false, slurm_wait = false;
  CLI::App* slurm = app.add_subcommand("slurm", "one Slurm job: a server task and N load tasks started together, merged");
  slurm->add_option("--model", slurm_job.model, "the echo model to serve")->required();
  slurm->add_option("--loads", slurm_job.loads, "load tasks (default 2), on as many nodes as the allocation has")
      ->check(CLI::Range(1, 1000));
  for (const char* name : {"workers", "variant"}) {
    slurm->add_option_function<std::string>(std::string("--") + name,
                                            [&slurm_job, name](const std::string& v) { slurm_job.serve[name] = v; },
                                            "as for serve");
  }
  for (const char* name : {"transport", "reply"}) {  // both sides must agree
    slurm->add_option_function<std::string>(std::string("--") + name, [&slurm_job, name](const std::string& v) {
      slurm_job.serve[name] = v;
      slurm_job.load[name] = v;
    }, "as for serve and load");
  }
  for (const char* name : {"connections", "size", "rate", "duration", "warmup", "repetitions", "client-threads"}) {
    slurm->add_option_function<std::string>(std::string("--") + name,
                                            [&slurm_job, name](const std::string& v) { slurm_job.load[name] = v; },
                                            std::string("as for load (per load task)"));
  }
  slurm->add_option("--partition", slurm_job.partition, "the Slurm partition (default: the cluster's)");
  slurm->add_option("--sbatch", slurm_job.sbatch, "an sbatch option, as it is (repeatable), e.g. --sbatch=--time=10");
  slurm->add_option("--harness", slurm_job.harness, "the binary the nodes run (default: this one, same path there)");
  slurm->add_option("--out", slurm_out, "directory for the script, the loads' files and merged.json "
                                        "(default results/slurm-TIME; must be shared by the nodes)");
  slurm->add_flag("--dry-run", slurm_dry_run, "write and print the batch script, submit nothing");
  slurm->add_flag("--wait", slurm_wait, "wait for the job to end (sbatch --wait) and exit with its status");

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

  try {
    if (app.got_subcommand("list")) return ListCommand();
    if (app.got_subcommand("serve")) {
      if (const auto clients = ClientScenarioNames(); serve_scenario.empty() && !clients.empty()) {
        serve_scenario = clients.front();
      }
      Scenario* scenario = FindScenario(serve_scenario);
      if (scenario == nullptr) throw UsageError("unknown scenario '" + serve_scenario + "' (see: list)");
      Endpoint endpoint;
      try {
        endpoint = ParseEndpoint(listen, true);
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--listen: ") + e.what());
      }
      if (!serve_cpus.empty()) {
        try {
          PinThisThread(ParseCpuList(serve_cpus));  // before the server makes any thread or child
        } catch (const std::invalid_argument& e) {
          throw UsageError(std::string("--server-cpus: ") + e.what());
        }
      }
      std::unique_ptr<UsageLog> usage_log;  // sampled until Serve returns
      if (!serve_usage.empty()) {
        try {
          usage_log = std::make_unique<UsageLog>(UserPath(serve_usage));
        } catch (const std::invalid_argument& e) {
          throw UsageError(std::string("--usage: ") + e.what());
        }
      }
      ServeOptions serve_options{serve_model, endpoint, serve_params, {}};
      if (usage_log) {
        serve_options.on_listening = [&](const std::string& address) { usage_log->Start(serve_model, address); };
      }
      return scenario->Serve(serve_options);
    }
    if (app.got_subcommand("measure")) return MeasureCommand(measure_spec, measure_repetition);
    if (app.got_subcommand("merge")) {
      std::vector<std::string> inputs;
      for (const auto& f : merge_inputs) inputs.push_back(UserPath(f));
      const std::string out = merge_out.empty() ? DefaultOut("merged.json") : UserPath(merge_out);
      return MergeCommand(inputs, out, command_line, merge_server_usage.empty() ? "" : UserPath(merge_server_usage));
    }
    if (app.got_subcommand("slurm")) return SlurmCommand(slurm_job, slurm_out, slurm_dry_run, slurm_wait);
    if (app.got_subcommand("load")) {
      Options options = ToOptions(load_flags, true);
      try {
        options.target = ParseEndpoint(target, false).ToString();
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--target: ") + e.what());
      }
      options.target_name = target_name;
      if (!server_pid.empty()) options.server_pid = static_cast<int>(ParseCount(server_pid, 1, 1 << 22));
      std::optional<Schedule> schedule;
      if (!start_every.empty() && start_at.empty()) throw UsageError("--start-every: only with --start-at");
      if (!start_at.empty()) schedule = ParseSchedule(start_at, start_every);
      auto runs = PlanAll(ClientScenarioNames(), options);
      if (schedule && schedule->period_s == 0) schedule->period_s = DefaultPeriod(runs);
      const std::string out = load_flags.out.empty() ? DefaultOut() : UserPath(load_flags.out);
      return Execute(runs, out, options.profile, command_line, schedule ? &*schedule : nullptr);
    }
    const RunFlags& flags = run_flags;  // also the default suite: no subcommand, every default
    Options options = ToOptions(flags);
    for (const std::string& extra : run->remaining()) {
      if (extra.rfind("--benchmark_", 0) != 0) throw UsageError("unexpected argument '" + extra + "' (see --help)");
      options.passthrough.push_back(extra);
    }
    const auto scenarios = flags.scenarios.empty() ? AllScenarioNames() : SplitList(flags.scenarios);
    auto runs = PlanAll(scenarios, options);
    if (dry_run) {
      for (const auto& r : runs) std::cout << r.spec.name << "\n";
      return 0;
    }
    const std::string out = flags.out.empty() ? DefaultOut() : UserPath(flags.out);
    return Execute(runs, out, options.profile, command_line);
  } catch (const std::invalid_argument& e) {  // a value echoed in a message is shown on one line
    std::cerr << "harness: error: " << Printable(e.what()) << "\n";
    return kExitUsage;
  } catch (const std::filesystem::filesystem_error& e) {  // e.g. run from a folder deleted since
    std::cerr << "harness: error: " << Printable(e.what()) << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {  // nothing ends the harness with an abort
    std::cerr << "harness: error: " << Printable(e.what()) << "\n";
    return kExitFailedRuns;
  }
}

}  // namespace
}  // namespace harness

int main(int argc, char** argv) { return harness::Main(argc, argv); }
