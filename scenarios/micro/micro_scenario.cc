// The micro scenario: a run per Google Benchmark benchmark of the primitives (micro/NAME), each
// repetition one process of the benchmark binary running that benchmark once, with Google
// Benchmark's own flags; its figures become an ordinary repetition, aggregated by the runner like
// any other. Google Benchmark does the measuring; this file only starts it and reads its JSON.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>

#include "harness/child_process.h"
#include "harness/process_usage.h"
#include "harness/runner.h"
#include "harness/scenario.h"

namespace micro {
namespace {

using harness::Duration;
using namespace std::chrono_literals;

// The binary sits beside the harness in Bazel's output tree (a data dependency of //harness).
std::string BinaryPath(const std::string& self_path) {
  const auto path =
      std::filesystem::path(self_path).parent_path().parent_path() / "scenarios" / "micro" / "micro_benchmarks";
  return path.string();
}

// "switch/threads/real_time" -> primitive "switch", model "threads".
std::pair<std::string, std::string> Split(const std::string& gb_name) {
  const size_t slash = gb_name.find('/');
  if (slash == std::string::npos) return {gb_name, gb_name};
  const size_t next = gb_name.find('/', slash + 1);
  return {gb_name.substr(0, slash), gb_name.substr(slash + 1, next - slash - 1)};
}

class MicroScenario final : public harness::Scenario {
 public:
  std::string name() const override { return "micro"; }
  std::string description() const override {
    return "Google Benchmark micro-benchmarks of the primitives: spawn, submit, switch, mutex, queue";
  }

  // The models are whatever the binary's benchmarks are named after (spawn/threads -> threads).
  std::vector<harness::ModelInfo> models() const override {
    std::vector<harness::ModelInfo> out;
    std::map<std::string, std::string> primitives;
    for (const std::string& gb : ListBenchmarks()) {
      const auto [primitive, model] = Split(gb);
      auto& list = primitives[model];
      if (list.find(primitive) == std::string::npos) list += (list.empty() ? "" : ", ") + primitive;
    }
    for (const auto& [model, list] : primitives) out.push_back({model, list});
    return out;
  }

  std::vector<harness::ParamInfo> params() const override { return {}; }
  Duration default_duration(const std::string& profile) const override {
    return profile == "smoke" ? Duration(10ms) : profile == "full" ? Duration(500ms) : Duration(100ms);
  }
  Duration default_warmup(const std::string&) const override { return Duration(0); }
  int default_repetitions(const std::string& profile) const override {
    return profile == "smoke" ? 2 : profile == "full" ? 5 : 3;
  }
  // Google Benchmark's real_time and cpu_time are the figures: the core's (harness/metrics.h).
  // A user counter a benchmark sets would be a metric of its own, and must be declared here.
  std::vector<harness::Metric> metrics() const override { return {}; }
  std::vector<std::string> columns() const override { return {"real_time", "cpu_time"}; }

  std::vector<harness::RunSpec> Plan(const harness::Options& options) const override {
    std::vector<std::string> args;
    // Google Benchmark's own flags come last and win, but for the filter: the benchmarks run are
    // those its filter selects *and* --model names (only models micro has reach here: the runner
    // scopes them); each run then names its one benchmark in the filter passed on.
    std::string user_filter;
    for (const auto& a : options.passthrough) {
      if (a.rfind("--benchmark_repetitions", 0) == 0) {
        throw std::invalid_argument(
            "--benchmark_repetitions: use --repetitions (each repetition is a process of its own)");
      }
      if (a.rfind("--benchmark_filter=", 0) == 0)
        user_filter = a.substr(a.find('=') + 1);
      else
        args.push_back(a);
    }
    std::vector<harness::RunSpec> runs;
    for (const std::string& gb : CheckedList(args, user_filter)) {
      const auto [primitive, model] = Split(gb);
      if (!options.models.empty() &&
          std::find(options.models.begin(), options.models.end(), model) == options.models.end()) {
        continue;
      }
      // Each repetition is a process of its own (the runner interleaves them with other runs), so
      // what differs between processes, memory layout above all, varies inside the sample instead
      // of between runs: Google Benchmark's in-process repetitions shared one layout (mutex/uncontended
      // took 13.2 ns in every repetition of one process and 18.1 ns in the next process).
      harness::RunSpec run =
          harness::NewRun(*this, model, {{"primitive", primitive}, {"threads", ThreadsOf(gb)}}, options);
      run.name = "micro/" + gb;  // Google Benchmark's own name
      run.plan_data["args"] = {"--benchmark_min_time=" +
                               std::to_string(std::chrono::duration<double>(run.duration).count())};
      for (const auto& a : args) run.plan_data["args"].push_back(a);  // after ours: theirs win
      run.plan_data["args"].push_back("--benchmark_filter=" + ExactAlternatives({gb}));
      runs.push_back(std::move(run));
    }
    if (runs.empty()) {
      throw std::invalid_argument("--benchmark_filter: no micro-benchmark matches '" + user_filter +
                                  "' and the models asked for (see: list)");
    }
    return runs;
  }

  harness::Repetition Measure(const harness::RunSpec& run, int) override {
    const std::string binary = BinaryPath(run.self_path);
    if (!std::filesystem::exists(binary)) throw std::runtime_error("micro-benchmark binary not found: " + binary);
    const std::string out =
        (std::filesystem::temp_directory_path() / ("harness-micro-" + std::to_string(getpid()) + ".json")).string();
    std::vector<std::string> argv = {binary, "--benchmark_out=" + out, "--benchmark_out_format=json"};
    for (const auto& a : run.plan_data.at("args")) argv.push_back(a.get<std::string>());
    harness::ChildProcess child(argv, run.placement.server);
    // The console table goes to stdout: drain it while waiting, bounded by an hour.
    const auto deadline = std::chrono::steady_clock::now() + 1h;
    while (child.Running() && std::chrono::steady_clock::now() < deadline && !harness::g_interrupted) {
      child.ReadLine(200ms);
    }
    const std::string how = child.Stop(2s);
    std::ifstream in(out);
    if (how != "exited with status 0" || !in) {
      std::filesystem::remove(out);
      const std::string tail = child.StderrTail();
      throw std::runtime_error("micro-benchmarks " + how + (tail.empty() ? "" : ": " + tail));
    }
    const nlohmann::json doc = nlohmann::json::parse(in);
    std::filesystem::remove(out);
    const auto& entries = doc.at("benchmarks");
    if (entries.size() != 1) {
      throw std::runtime_error("Google Benchmark wrote " + std::to_string(entries.size()) + " entries for " + run.name +
                               ", not one");
    }
    return FromEntry(entries.front());
  }

 private:
  // Every benchmark the binary has; none where it is missing (`list` still lists the other scenarios).
  static std::vector<std::string> ListBenchmarks() {
    if (!std::filesystem::exists(BinaryPath(harness::SelfExecutable()))) return {};
    return CheckedList({}, "");
  }

  // The benchmarks `args` and `filter` select, by running the binary with them and
  // --benchmark_list_tests: a flag Google Benchmark refuses is bad input (exit 2), not a failed run.
  static std::vector<std::string> CheckedList(const std::vector<std::string>& args, const std::string& filter) {
    const std::string binary = BinaryPath(harness::SelfExecutable());
    if (!std::filesystem::exists(binary)) throw std::runtime_error("micro-benchmark binary not found: " + binary);
    std::vector<std::string> argv = {binary, "--benchmark_list_tests=true"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!filter.empty()) argv.push_back("--benchmark_filter=" + filter);
    harness::ChildProcess child(argv);
    std::vector<std::string> names;
    while (auto line = child.ReadLine(10s)) names.push_back(*line);
    const std::string how = child.Stop(1s);
    if (how != "exited with status 0") {
      std::string why = child.StderrTail();
      why = why.substr(0, why.find(" | "));  // Google Benchmark's first line says which flag
      if (const size_t at = why.find("error: "); at != std::string::npos) why = why.substr(at + 7);
      throw std::invalid_argument("Google Benchmark refuses its flags: " + (why.empty() ? how : why));
    }
    return names;
  }

  // ^(a|b|c)$ with every regex metacharacter of the names escaped.
  static std::string ExactAlternatives(const std::vector<std::string>& names) {
    std::string out = "^(";
    for (size_t i = 0; i < names.size(); ++i) {
      if (i) out += "|";
      for (char c : names[i]) {
        if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
        out += c;
      }
    }
    return out + ")$";
  }

  // "mutex/contended/real_time/threads:2" -> 2; 1 without the suffix.
  static int ThreadsOf(const std::string& gb_name) {
    const size_t at = gb_name.rfind("/threads:");
    return at == std::string::npos ? 1 : std::stoi(gb_name.substr(at + 9));
  }

  // One Google Benchmark entry as a repetition: its iterations, real and CPU time in ns, and any
  // other number it has (a user counter) as a metric, which the runner refuses unless declared.
  static harness::Repetition FromEntry(const nlohmann::json& e) {
    if (e.value("error_occurred", false)) return harness::Repetition::Failed(e.value("error_message", "failed"));
    static const std::map<std::string, double> kToNs = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}};
    const auto unit = kToNs.find(e.value("time_unit", "ns"));
    if (unit == kToNs.end()) throw std::runtime_error("Google Benchmark's time_unit " + e["time_unit"].dump());
    harness::Repetition rep;
    rep.ok = true;
    rep.iterations = e.at("iterations").get<uint64_t>();
    rep.real_time_ns = e.at("real_time").get<double>() * unit->second;
    rep.cpu_time_ns = e.at("cpu_time").get<double>() * unit->second;
    static const std::set<std::string> kOwn = {"family_index", "per_family_instance_index",
                                               "repetitions",  "repetition_index",
                                               "threads",      "iterations",
                                               "real_time",    "cpu_time"};
    for (const auto& [key, value] : e.items()) {
      if (value.is_number() && !kOwn.count(key)) rep.metrics[key] = value;
    }
    return rep;
  }
};

}  // namespace

HARNESS_REGISTER(harness::ScenarioEntry, std::make_unique<MicroScenario>());

}  // namespace micro
