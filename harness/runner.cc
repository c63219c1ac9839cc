#include "harness/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>
#include <thread>

#include "harness/isolated.h"
#include "harness/noise.h"
#include "harness/progress.h"
#include "harness/stats.h"

namespace harness {

std::atomic<bool> g_interrupted{false};

std::vector<PlannedRun> PlanAll(const std::vector<std::string>& scenarios, const Options& options) {
  std::optional<std::regex> filter;
  if (!options.filter.empty()) {
    try {
      filter.emplace(options.filter, std::regex::extended);
    } catch (const std::regex_error& e) {
      throw std::invalid_argument("--filter: not a regular expression: '" + options.filter + "'");
    }
  }
  std::vector<Scenario*> selected;
  std::set<std::string> known;  // every model of the selected scenarios
  for (const std::string& name : scenarios) {
    Scenario* scenario = FindScenario(name);
    if (scenario == nullptr) throw std::invalid_argument("unknown scenario '" + name + "' (see: list)");
    selected.push_back(scenario);
    for (const auto& m : scenario->models()) known.insert(m.name);
  }
  for (const std::string& m : options.models) {
    if (!known.count(m)) throw std::invalid_argument("unknown model '" + m + "' (see: list)");
  }
  std::vector<PlannedRun> runs;
  std::set<std::string> taken;  // parameters some planned run has
  for (Scenario* scenario : selected) {
    // Each scenario plans the requested models it has; one that has none of them is skipped.
    Options scoped = options;
    if (!options.models.empty()) {
      scoped.models.clear();
      for (const auto& m : scenario->models()) {
        if (std::find(options.models.begin(), options.models.end(), m.name) != options.models.end()) {
          scoped.models.push_back(m.name);
        }
      }
      if (scoped.models.empty()) continue;
    }
    Placement placement =
        ResolvePlacement(options.cpus_mode, options.server_cpus, options.client_cpus, scenario->has_client());
    if (options.target) placement.server.clear();  // `load`: the server runs where it was started
    for (RunSpec& spec : scenario->Plan(scoped)) {
      spec.placement = placement;
      spec.redo = options.redo.value_or(spec.repetitions);
      spec.noise_threshold = options.noise_threshold;
      for (const auto& [key, value] : spec.params.items()) taken.insert(key);
      taken.insert(spec.consumed.begin(), spec.consumed.end());
      if (filter && !std::regex_search(spec.name, *filter)) continue;
      runs.push_back({scenario, std::move(spec)});
    }
  }
  // A flag that changes nothing is a mistake the user should hear of (--items on echo, --workers
  // for a model without workers), not a run that silently measured something else.
  for (const auto& [name, value] : options.params) {
    if (!taken.count(name)) {
      throw std::invalid_argument("--" + name + ": no selected scenario and model takes it (see: list)");
    }
  }
  if (runs.empty()) throw std::invalid_argument("nothing to run: no run matches the options given");
  return runs;
}

namespace {

bool Excluded(const Repetition& r) { return r.detail.contains("excluded"); }

std::string Outcome(const std::vector<Repetition>& reps) {
  int failed = 0, excluded = 0;
  std::vector<double> rates;
  for (const auto& r : reps) {
    if (Excluded(r))
      ++excluded;  // a failure the noise caused and measured again among them
    else if (!r.ok)
      ++failed;
    else if (r.real_time_ns > 0)
      rates.push_back(1e9 / r.real_time_ns);
  }
  std::vector<std::string> parts;
  if (!rates.empty()) parts.push_back(fmt::format("{:.0f} ops/s (median of {})", Median(rates), rates.size()));
  int noisy = 0;
  std::string busiest;
  std::map<std::string, int> spoiled;  // by kind: "load generator late in 2 of 5"
  for (const auto& r : reps) {
    if (!r.spoiled.empty()) ++spoiled[Repetition::KindOf(r.spoiled)];
    if (!r.ok) continue;
    if (r.detail.contains("noise") && r.detail["noise"].value("noisy", false)) {
      ++noisy;
      busiest = r.detail["noise"].value("busiest", busiest);
    }
  }
  if (noisy) {
    parts.push_back(
        fmt::format("noisy neighbour in {} of {}{}", noisy, reps.size(), busiest.empty() ? "" : " (" + busiest + ")"));
  }
  for (const auto& [kind, n] : spoiled) parts.push_back(fmt::format("{} in {} of {}", kind, n, reps.size()));
  if (excluded && !parts.empty()) parts.back() += fmt::format(", {} left out", excluded);
  if (failed) {
    const std::string& why =
        std::find_if(reps.begin(), reps.end(), [](auto& r) { return !r.ok && !Excluded(r); })->error;
    parts.push_back(fmt::format("FAILED {}x: {}", failed, why));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

// A figure the scenario did not declare has no meaning the file could carry: the repetition fails,
// naming it (a scenario's mistake, found by its first run).
std::string Undeclared(const Repetition& rep, const MetricSet& declared, const std::string& scenario) {
  for (const auto& [key, value] : rep.metrics.items()) {
    if (!declared.count(key)) return "metric '" + key + "' is not declared by scenario " + scenario;
  }
  return "";
}

// What the runner knows of a run while its repetitions go on.
struct RunState {
  std::vector<Repetition> reps;  // in the order measured, redone ones among them
  int planned = 0;               // repetitions to measure: the asked ones and the redos granted
  int redone = 0;
};

// A repetition whose CPUs were taken by more than the run's threshold, or that its scenario found
// spoiled by its own instrument (Repetition::spoiled), is left out of the aggregates and, within the
// run's redo budget, measured again in a later round; without a budget (--redo=0) it is kept,
// flagged, as before. One made of windows that redid their own noisy ones (the capacity search) is
// only flagged for noise, but measured again if it says it is spoiled (a search noise stopped). A
// failed one that says so (the search stopped before anything met) is measured again within the
// budget; past it, it is a failure.
void JudgeNoise(const RunSpec& spec, const NoiseReport& noise, Repetition& rep, RunState& state, Progress& progress,
                int repetition_index) {
  if (!rep.ok && (rep.spoiled.empty() || spec.redo == 0 || state.redone >= spec.redo)) return;
  rep.detail["noise"] = noise.ToJson();
  if (!rep.spoiled.empty()) rep.detail["spoiled"] = rep.spoiled;
  const bool noisy = noise.noisy() && !rep.noise_judged;
  if ((!noisy && rep.spoiled.empty()) || spec.redo == 0) return;
  const std::string why = noisy ? "noisy neighbour: " + noise.Describe() : rep.spoiled;
  rep.detail["excluded"] = why;
  const bool again = state.redone < spec.redo;
  if (again) {
    ++state.redone;
    ++state.planned;
  }
  progress.Note(fmt::format("{} repetition {}: {}; {}", spec.name, repetition_index + 1,
                            noisy ? noise.Describe() : rep.spoiled,
                            again ? fmt::format("measuring it again ({} of {} redos)", state.redone, spec.redo)
                                  : fmt::format("no redo left (--redo={}): left out", spec.redo)));
}

// Each run's family: one per scenario and model, numbered in the order first seen.
std::vector<int> FamilyIndices(const std::vector<PlannedRun>& runs) {
  std::map<std::string, int> family_of_scenario_model;
  std::vector<int> family_index;
  for (const PlannedRun& run : runs) {
    const std::string family = run.spec.scenario + "/" + run.spec.model;
    family_index.push_back(family_of_scenario_model.try_emplace(family, family_of_scenario_model.size()).first->second);
  }
  return family_index;
}

// Measures repetition r of `run` (in a child if its scenario asks), with what the noise meter saw
// meanwhile in `quiet`; a repetition with an undeclared metric is a failure.
Repetition MeasureOne(const PlannedRun& run, int r, const NoiseProbe& probe, const MetricSet& metrics,
                      NoiseReport& quiet) {
  const RunSpec& spec = run.spec;
  const NoiseWatch noise = probe(spec.placement.UnderTest());
  Repetition rep;
  try {
    rep = run.scenario->isolated() ? MeasureInChild(spec, r) : run.scenario->Measure(spec, r);
  } catch (const std::exception& e) {
    rep = Repetition::Failed(e.what());
  }
  quiet = noise();
  quiet.threshold = spec.noise_threshold;
  quiet.others_judged = !spec.target;  // `load`: the server and the loads beside it are others
  if (std::string why = Undeclared(rep, metrics, spec.scenario); rep.ok && !why.empty()) rep = Repetition::Failed(why);
  return rep;
}

}  // namespace

// Repetitions are interleaved: round r measures repetition r of every run in turn, so that a slow
// minute of the machine costs every run a little instead of one run a lot, and each repetition of
// a run meets the machine in another state (Google Benchmark's random interleaving has the idea).
// Redone repetitions take further rounds, interleaved alike, so that a redo does not fall into the
// burst that spoiled the first try.
int RunAll(std::vector<PlannedRun>& runs, ResultsWriter& writer, const Schedule* schedule, const NoiseProbe& probe) {
  int slot = 0;  // repetitions measured so far: the schedule's k
  const auto wait_for_slot = [&] {
    if (schedule == nullptr) return;
    const double at = schedule->start_unix + schedule->period_s * slot++;
    while (!g_interrupted) {
      const double now = UnixSeconds();
      if (now >= at) return;
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.05, at - now)));
    }
  };
  Progress progress(static_cast<int>(runs.size()));
  int failures = 0;
  const std::vector<int> family_index = FamilyIndices(runs);
  std::vector<RunState> states(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) states[i].planned = runs[i].spec.repetitions;
  const auto rounds = [&] {
    int most = 0;
    for (const RunState& s : states) most = std::max(most, s.planned);
    return most;
  };
  std::map<const Scenario*, MetricSet> declared;
  for (const auto& run : runs) declared.try_emplace(run.scenario, MetricsOf(*run.scenario));
  const auto started = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds() && !g_interrupted; ++r) {
    for (size_t i = 0; i < runs.size() && !g_interrupted; ++i) {
      const RunSpec& spec = runs[i].spec;
      RunState& state = states[i];
      if (r >= state.planned) continue;
      const int instance_index = static_cast<int>(i);
      wait_for_slot();
      if (g_interrupted) break;
      progress.Started(static_cast<int>(i), spec.name, r, state.planned);
      NoiseReport quiet;
      const MetricSet& metrics = declared.at(runs[i].scenario);
      Repetition rep = MeasureOne(runs[i], r, probe, metrics, quiet);
      if (g_interrupted && !rep.ok) break;  // a run cut short by Ctrl-C is not a failure of the model
      JudgeNoise(spec, quiet, rep, state, progress, r);
      if (!rep.ok && !Excluded(rep)) ++failures;
      writer.Add(IterationEntry(spec, rep, r, family_index[i], instance_index));
      state.reps.push_back(std::move(rep));
      if (r + 1 < state.planned) continue;
      if (spec.repetitions > 1)
        writer.AddAll(AggregateEntries(spec, state.reps, family_index[i], instance_index, metrics));
      progress.Finished(static_cast<int>(i), spec.name, Outcome(state.reps));
    }
    if (!g_interrupted) {
      progress.RoundFinished(r, rounds(),
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
  }
  return failures;
}

namespace {

// "{:>11.2f}" of a declaration's ".2f".
std::string Cell(const Metric& m, const nlohmann::json& value) {
  if (!value.is_number()) return fmt::format(" {:>11}", "-");
  return " " + fmt::format(fmt::runtime("{:>11" + m.format + "}"), value.get<double>() * m.scale);
}

// The rows of the summary by scenario: medians where there are aggregates, the single repetition
// otherwise (the noise guard's kept one if any), failures always.
std::map<std::string, std::vector<const nlohmann::json*>> SummaryRows(const nlohmann::json& document) {
  std::set<std::string> has_median;
  std::set<std::string> has_kept;  // runs with an ok iteration the noise guard kept
  for (const auto& e : document["benchmarks"]) {
    if (e.value("aggregate_name", "") == "median") has_median.insert(e["run_name"].get<std::string>());
    if (e["run_type"] == "iteration" && e.value("status", "") == "ok" && !e.contains("excluded"))
      has_kept.insert(e["run_name"].get<std::string>());
  }
  std::map<std::string, std::vector<const nlohmann::json*>> by_scenario;
  for (const auto& e : document["benchmarks"]) {
    const bool median = e.value("aggregate_name", "") == "median";
    const bool single = e["run_type"] == "iteration" && !has_median.count(e["run_name"]) &&
                        (!e.contains("excluded") || !has_kept.count(e["run_name"]));
    const bool failed = e.value("status", "") == "failed";
    if (failed && e.contains("excluded")) continue;  // a failure the noise caused: its redo's row speaks
    if (median || (single && !failed) || failed) by_scenario[e["scenario"]].push_back(&e);
  }
  return by_scenario;
}

// One scenario's table: the columns its context declares that some row has.
std::string ScenarioTable(const nlohmann::json& context, const MetricSet& declared, const std::string& scenario_name,
                          const std::vector<const nlohmann::json*>& rows) {
  std::vector<const Metric*> columns;
  const nlohmann::json scenarios = context.value("scenarios", nlohmann::json::object());
  const nlohmann::json keys = scenarios.contains(scenario_name)
                                  ? scenarios[scenario_name].value("columns", nlohmann::json::array())
                                  : nlohmann::json::array();
  for (const auto& key : keys) {
    const auto it = declared.find(key.get<std::string>());
    const bool shown =
        std::any_of(rows.begin(), rows.end(), [&](const auto* r) { return r->contains(key.get<std::string>()); });
    if (it != declared.end() && shown) columns.push_back(&it->second);
  }
  size_t width = 10;
  for (const auto* row : rows) width = std::max(width, (*row)["run_name"].get<std::string>().size());
  std::string out = fmt::format("\n{:<{}}", scenario_name + " (medians of repetitions)", width);
  for (const Metric* c : columns) out += fmt::format(" {:>11}", c->label);
  out += "\n";
  for (const auto* row : rows) {
    const auto& e = *row;
    std::string label = e["run_name"].get<std::string>();
    if (e.value("status", "") == "failed") {
      out += fmt::format("{:<{}} FAILED (repetition {}): {}\n", label, width, e.value("repetition_index", 0),
                         e.value("error", ""));
      continue;
    }
    out += fmt::format("{:<{}}", label, width);
    for (const Metric* c : columns) out += Cell(*c, e.value(c->key, nlohmann::json()));
    out += "\n";
    for (const auto& w : e.value("warnings", nlohmann::json::array())) out += "    ! " + w.get<std::string>() + "\n";
  }
  return out;
}

// The lines that count noisy repetitions and those their scenario found spoiled, or "" when there
// were none.
std::string NoiseFooter(const nlohmann::json& document) {
  int noisy = 0, measured = 0, excluded = 0, spoiled = 0, spoiled_excluded = 0;
  double threshold = kNoisyFraction;
  for (const auto& e : document["benchmarks"]) {
    if (e.value("run_type", "") != "iteration" || !e.contains("noise")) continue;
    ++measured;
    const bool is_noisy = e["noise"].value("noisy", false);
    noisy += is_noisy;
    excluded += is_noisy && e.contains("excluded");
    const bool only_spoiled = !is_noisy && e.contains("spoiled");  // a noisy one is counted as such
    spoiled += only_spoiled;
    spoiled_excluded += only_spoiled && e.contains("excluded");
    threshold = e["noise"].value("threshold", threshold);
  }
  std::string out;
  if (noisy) {
    out += fmt::format(
        "\nnoisy neighbour: in {} of {} repetitions other processes or the hypervisor took more than "
        "{:.0f}% of the CPUs under test (each entry's \"noise\" says how much and who)",
        noisy, measured, threshold * 100);
    if (excluded) out += fmt::format("; {} left out of the medians and measured again (\"excluded\")", excluded);
    if (noisy > excluded) {
      out += fmt::format("; {} kept (--redo=0, or a capacity search, which redoes its noisy windows itself)",
                         noisy - excluded);
    }
    out += "\n";
  }
  if (spoiled) {
    out += fmt::format(
        "{}spoiled: in {} of {} repetitions the scenario found its own figures spoiled (each entry's "
        "\"spoiled\" says how)",
        noisy ? "" : "\n", spoiled, measured);
    if (spoiled_excluded) out += fmt::format("; {} left out of the medians and measured again", spoiled_excluded);
    if (spoiled > spoiled_excluded) out += fmt::format("; {} kept (--redo=0)", spoiled - spoiled_excluded);
    out += "\n";
  }
  return out;
}

}  // namespace

std::string SummaryTable(const nlohmann::json& document) {
  // Columns: what the document's context declares (context.scenarios.NAME.columns, context.metrics).
  const nlohmann::json& context = document["context"];
  const MetricSet declared = MetricsFromJson(context.value("metrics", nlohmann::json::object()));
  std::string out;
  for (const auto& [scenario_name, rows] : SummaryRows(document)) {
    out += ScenarioTable(context, declared, scenario_name, rows);
    if (const Scenario* scenario = FindScenario(scenario_name)) out += scenario->SummaryNotes(document);
  }
  return out + NoiseFooter(document);
}

}  // namespace harness
