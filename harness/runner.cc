#include "harness/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>

#include "harness/isolated.h"
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
    for (RunSpec& spec : scenario->Plan(scoped)) {
      for (const auto& [key, value] : spec.params.items()) taken.insert(key);
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

std::string Outcome(const std::vector<Repetition>& reps) {
  if (!reps.empty() && !reps.front().entries.empty()) return std::to_string(reps.front().entries.size()) + " entries";
  int failed = 0;
  std::vector<double> rates;
  for (const auto& r : reps) {
    if (!r.ok) ++failed;
    else if (r.real_time_ns > 0) rates.push_back(1e9 / r.real_time_ns);
  }
  std::string text;
  if (!rates.empty()) text = fmt::format("{:.0f} ops/s (median of {})", Median(rates), rates.size());
  if (failed) {
    const std::string& why = std::find_if(reps.begin(), reps.end(), [](auto& r) { return !r.ok; })->error;
    text += (text.empty() ? "" : "; ") + fmt::format("FAILED {}x: {}", failed, why);
  }
  return text;
}

}  // namespace

int RunAll(std::vector<PlannedRun>& runs, ResultsWriter& writer) {
  Progress progress(static_cast<int>(runs.size()));
  int failures = 0;
  std::map<std::string, int> family_of_scenario_model;
  for (size_t i = 0; i < runs.size() && !g_interrupted; ++i) {
    const RunSpec& spec = runs[i].spec;
    const std::string family = spec.scenario + "/" + spec.model;
    const int family_index = static_cast<int>(
        family_of_scenario_model.try_emplace(family, family_of_scenario_model.size()).first->second);
    const int instance_index = static_cast<int>(i);
    std::vector<Repetition> reps;
    for (int r = 0; r < spec.repetitions && !g_interrupted; ++r) {
      progress.Started(static_cast<int>(i), spec.name, r, spec.repetitions);
      Repetition rep;
      try {
        rep = runs[i].scenario->isolated() ? MeasureInChild(spec, r) : runs[i].scenario->Measure(spec, r);
      } catch (const std::exception& e) {
        rep = Repetition::Failed(e.what());
      }
      if (g_interrupted && !rep.ok) break;  // a run cut short by Ctrl-C is not a failure of the model
      if (!rep.ok) ++failures;
      if (rep.entries.empty()) {
        writer.Add(IterationEntry(spec, rep, r, family_index, instance_index));
      }
      for (auto& e : rep.entries) {
        // Keep the tool's own family numbering apart from ours.
        e["family_index"] = 1000 * (family_index + 1) + e.value("family_index", 0);
        if (e.value("status", "ok") != "ok") ++failures;
      }
      if (!rep.entries.empty()) writer.AddAll(rep.entries);
      reps.push_back(std::move(rep));
    }
    const bool ready_made = !reps.empty() && !reps.front().entries.empty();
    if (!ready_made && reps.size() == static_cast<size_t>(spec.repetitions) && spec.repetitions > 1) {
      writer.AddAll(AggregateEntries(spec, reps, family_index, instance_index));
    }
    progress.Finished(static_cast<int>(i), spec.name, Outcome(reps));
  }
  return failures;
}

std::string SummaryTable(const nlohmann::json& document) {
  // Rows: medians where there are aggregates, the single repetition otherwise, failures always.
  std::map<std::string, std::vector<const nlohmann::json*>> by_scenario;
  std::set<std::string> has_median;
  for (const auto& e : document["benchmarks"]) {
    if (e.value("aggregate_name", "") == "median") has_median.insert(e["run_name"].get<std::string>());
  }
  for (const auto& e : document["benchmarks"]) {
    const bool median = e.value("aggregate_name", "") == "median";
    const bool single = e["run_type"] == "iteration" && !has_median.count(e["run_name"]);
    const bool failed = e.value("status", "") == "failed";
    if (median || (single && !failed) || failed) by_scenario[e["scenario"]].push_back(&e);
  }
  std::string out;
  for (const auto& [scenario_name, rows] : by_scenario) {
    Scenario* scenario = FindScenario(scenario_name);
    if (scenario == nullptr) continue;
    const auto columns = scenario->summary_columns();
    size_t width = 10;
    for (const auto* row : rows) width = std::max(width, (*row)["run_name"].get<std::string>().size());
    out += fmt::format("\n{:<{}}", scenario_name + " (medians of repetitions)", width);
    for (const auto& c : columns) out += fmt::format(" {:>11}", c.header);
    out += "\n";
    for (const auto* row : rows) {
      const auto& e = *row;
      std::string label = e["run_name"].get<std::string>();
      if (e.value("status", "") == "failed") {
        out += fmt::format("{:<{}} FAILED (repetition {}): {}\n", label, width,
                           e.value("repetition_index", 0), e.value("error", ""));
        continue;
      }
      out += fmt::format("{:<{}}", label, width);
      for (const auto& c : columns) {
        if (!e.contains(c.key) || !e[c.key].is_number()) {
          out += fmt::format(" {:>11}", "-");
        } else {
          out += " " + fmt::format(fmt::runtime(c.format), e[c.key].get<double>() * c.scale);
        }
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace harness
