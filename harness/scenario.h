// The contract between the harness and a workload. A scenario (echo, pipeline, micro) declares its
// models, parameters and metrics, expands the user's options into concrete runs, and measures one
// repetition of a run. It registers itself with one line (harness/registry.h):
//
//   HARNESS_REGISTER(harness::ScenarioEntry, std::make_unique<EchoScenario>());
//
// Nothing in harness/ knows any scenario, model or metric by name.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/metrics.h"
#include "harness/noise.h"
#include "harness/params.h"
#include "harness/placement.h"
#include "harness/registry.h"

namespace harness {

struct ModelInfo {
  std::string name;
  std::string description;
};

struct ParamInfo {
  std::string name;  // the flag, without "--"
  std::string help;
  std::map<std::string, std::string> by_profile;  // profile -> default value (comma list)
  // Set: the flag may be given bare (`--capacity`), meaning this value.
  std::optional<std::string> implicit = std::nullopt;
};

// What the user asked for, before expansion.
struct Options {
  std::string profile = "quick";
  std::vector<std::string> models;            // empty: every model of the scenario
  std::map<std::string, std::string> params;  // flag -> value the user gave
  std::optional<Duration> duration, warmup;   // unset: the profile's
  std::optional<int> repetitions;             // unset: the profile's
  std::optional<int> redo;                    // unset: as many as the repetitions (harness/runner.h)
  double noise_threshold = kNoisyFraction;    // the noise a repetition may have and be kept
  std::optional<std::string> target;          // `load`: drive this HOST:PORT
  std::optional<int> server_pid;              // `load`: sample this process's usage
  std::string target_name = "external";       // `load`: the model name in the results
  std::string filter;                         // regex over run names
  std::string self_path;                      // the harness binary, to start servers
  std::vector<std::string> passthrough;       // --benchmark_* flags for Google Benchmark
  // Placement (harness/placement.h): --cpus=split|shared, --server-cpus, --client-cpus as given.
  std::string cpus_mode = "split";
  std::string server_cpus, client_cpus;
};

// One concrete run: a scenario, a model, and one value of every parameter.
struct RunSpec {
  std::string scenario;
  std::string model;
  nlohmann::json params = nlohmann::json::object();  // e.g. {"connections": 100, "size": 64}
  std::string name;                                  // e.g. "echo/asio/connections:100/size:64"
  Duration duration{};
  Duration warmup{};
  int repetitions = 1;
  // Repetitions that may be measured again because the noise guard saw their CPUs taken by more
  // than noise_threshold (harness/noise.h); 0: none is, and a noisy one is kept as it is.
  int redo = 0;
  double noise_threshold = kNoisyFraction;
  std::optional<std::string> target;
  std::optional<int> server_pid;
  std::string self_path;
  Placement placement;  // set by the runner for every run of the scenario
  // The scenario's own, from Plan() to Measure() (a calibration done once, so that every model and
  // every measuring process use the same); carried to `harness measure`, never written to results.
  nlohmann::json plan_data = nlohmann::json::object();
  // Flags the run took that are not among its params (folded into another's value): not "unused".
  std::vector<std::string> consumed;
};

// What one repetition measured. A failed repetition has ok = false, error set, and no figures.
struct Repetition {
  bool ok = false;
  std::string error;
  uint64_t iterations = 0;                            // operations counted (messages, items)
  double real_time_ns = 0;                            // wall time per operation
  double cpu_time_ns = 0;                             // the server's / executor's CPU per operation
  nlohmann::json metrics = nlohmann::json::object();  // numeric, each declared by the scenario (metrics())
  nlohmann::json detail = nlohmann::json::object();   // not aggregated: histogram, timeline
  // What makes the figures less than they seem, as "kind: what" (e.g. "client-bound: the load
  // generator was 97% busy"): in the entry, counted per kind in the aggregates, shown by the summary.
  std::vector<std::string> warnings;
  // Set by a repetition made of windows that redid its own noisy ones (the capacity search): the
  // runner records its noise but does not measure it again.
  bool noise_judged = false;
  // Set by a scenario whose own instrument spoiled the repetition, as "kind: what" (e.g. "load
  // generator late: ..."): its figures are then not the model's. The runner treats it as it treats a
  // noisy one: left out of the aggregates and, within the redo budget, measured again.
  std::string spoiled;

  // The kind of a "kind: what" text (a warning, `spoiled`): what the aggregates and the summary count by.
  static std::string KindOf(const std::string& said) { return said.substr(0, said.find(':')); }

  static Repetition Failed(std::string why) {
    Repetition r;
    r.error = std::move(why);
    return r;
  }
};

struct ServeOptions {
  std::string model;
  Endpoint listen;
  std::map<std::string, std::string> params;  // e.g. workers
  // Called with the address once the server listens, before it says so on stdout.
  std::function<void(const std::string& address)> on_listening;
};

class Scenario {
 public:
  virtual ~Scenario() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  virtual std::vector<ModelInfo> models() const = 0;
  virtual std::vector<ParamInfo> params() const = 0;
  // Profile defaults for duration, warm-up and repetitions.
  virtual Duration default_duration(const std::string& profile) const = 0;
  virtual Duration default_warmup(const std::string& profile) const = 0;
  virtual int default_repetitions(const std::string& profile) const = 0;
  // The figures a repetition reports besides the core three (harness/metrics.h), each declared once.
  virtual std::vector<Metric> metrics() const = 0;
  // The summary table's columns, in order: by default the declared metrics marked `column`.
  virtual std::vector<std::string> columns() const;

  // Expands options into runs. Throws std::invalid_argument (shown to the user, exit 2) on bad values.
  virtual std::vector<RunSpec> Plan(const Options& options) const = 0;
  // Measures one repetition. A failure of the thing measured returns Repetition::Failed or throws
  // std::exception: the runner records either as a failed repetition with the message.
  virtual Repetition Measure(const RunSpec& run, int repetition_index) = 0;

  // True: the runner measures each repetition in a fresh process (harness/isolated.h), for a
  // scenario whose models run inside the measuring process. Its RunSpecs then need self_path.
  virtual bool isolated() const { return false; }
  // True: the scenario drives a server with a load generator on this machine, so the default
  // placement splits the CPUs between them (harness/placement.h).
  virtual bool has_client() const { return false; }

  // The parameters (of params()) its server takes: `serve` declares them as its flags.
  virtual std::vector<std::string> server_params() const { return {}; }
  // `serve`: runs one server in the foreground until SIGINT/SIGTERM. Returns the exit code.
  virtual int Serve(const ServeOptions& options) {
    throw std::invalid_argument("scenario " + name() + " has no server to serve");
  }

  // Lines the summary prints after the scenario's table, from the whole document (a finding across
  // runs, such as the pool size a sweep points at); "" for none.
  virtual std::string SummaryNotes(const nlohmann::json& document) const { return ""; }

  // `merge`: true when the results of concurrent `load`s of one server combine. Every metric then
  // merges by its declared rule; the scenario computes the parameters of the merged run (from the
  // parts', `target` removed) and the metrics declared MergeRule::kRecompute, real_time and
  // cpu_time among them, from the parts and what the rules already merged.
  virtual bool merges() const { return false; }
  virtual nlohmann::json MergedParams(const std::vector<nlohmann::json>& parts) const { return parts.front(); }
  virtual void Recompute(const std::vector<const nlohmann::json*>& parts, Repetition& merged) const {}
  // `merge`: why one ok `load` repetition's figures contradict one another (a rate its iterations
  // over its window cannot give, say), or "". Merged figures are only as right as their parts, and a
  // part edited by hand would pass into them unseen. Each figure is already in its declared range.
  virtual std::string Contradiction(const nlohmann::json& entry) const { return ""; }
};

using ScenarioEntry = std::unique_ptr<Scenario>;

// Every registered scenario, in the order of registration.
inline const std::vector<ScenarioEntry>& Scenarios() { return Registry<ScenarioEntry>::All(); }
inline Scenario* FindScenario(const std::string& name) {
  const ScenarioEntry* s = Registry<ScenarioEntry>::Find(name);
  return s ? s->get() : nullptr;
}

// The core metrics and the scenario's, by key.
MetricSet MetricsOf(const Scenario& scenario);
// Throws std::logic_error for declarations that cannot stand: a key declared twice by a scenario,
// a core key redeclared, one key declared differently by two scenarios (a results file holds one
// declaration per key), a column that is not declared.
void CheckDeclarations(const std::vector<const Scenario*>& scenarios);
// What a results file carries of the scenarios it has: `metrics` (every declaration, by key) and
// `scenarios` ({name: {"metrics": [keys it reports], "columns": [keys of its summary table]}}).
nlohmann::json DeclarationsJson(const std::vector<const Scenario*>& scenarios);

// Expands params into their product, validating each value with `parse` (called per param name
// and raw item, returning the JSON value to store). Missing params take the profile default.
std::vector<nlohmann::json> ParamProduct(const std::vector<ParamInfo>& params, const Options& options,
                                         const std::vector<std::string>& used,
                                         nlohmann::json (*parse)(const std::string&, const std::string&));
// "scenario/model/k1:v1/k2:v2"
std::string RunName(const std::string& scenario, const std::string& model, const nlohmann::json& params);

// The run scenario/model/params, named by RunName, timed by the options or else the scenario's
// defaults for the profile, and carrying what every run takes from the options (target, server
// pid, the harness binary). A scenario's Plan() sets what is its own after it.
RunSpec NewRun(const Scenario& scenario, const std::string& model, nlohmann::json params, const Options& options);

}  // namespace harness
