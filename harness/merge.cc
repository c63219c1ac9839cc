#include "harness/merge.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/histogram.h"
#include "harness/params.h"
#include "harness/results.h"
#include "harness/scenario.h"
#include "harness/text.h"

namespace harness {
namespace {

// One run as it appears in one file.
struct Part {
  const ResultsFile* file;
  std::vector<const nlohmann::json*> iterations;  // by position in the file
};

double Number(const nlohmann::json& e, const std::string& key) { return e.contains(key) ? e[key].get<double>() : 0; }

// How much the parts' windows overlap, as a fraction of the longest; 1 when no window is known.
double WindowOverlap(const std::vector<const nlohmann::json*>& parts) {
  double latest_start = -1e300, earliest_end = 1e300, longest = 0;
  for (const auto* e : parts) {
    if (!e->contains("window_unix_s")) return 1;
    const double start = (*e)["window_unix_s"][0], end = (*e)["window_unix_s"][1];
    latest_start = std::max(latest_start, start);
    earliest_end = std::min(earliest_end, end);
    longest = std::max(longest, end - start);
  }
  return longest > 0 ? std::max(0.0, earliest_end - latest_start) / longest : 1;
}

// Every metric the parts have, by its declared rule; then the scenario's recomputed ones.
Repetition Combine(const Scenario& scenario, const MetricSet& declared, const std::vector<const nlohmann::json*>& parts,
                   const std::vector<std::string>& sources) {
  std::string failures;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i]->value("status", "ok") != "ok") {
      failures += (failures.empty() ? "" : "; ") + sources[i] + ": " + parts[i]->value("error", "failed");
    }
  }
  if (!failures.empty()) return Repetition::Failed(failures);
  const double overlap = WindowOverlap(parts);
  if (overlap < 0.5) {
    return Repetition::Failed("the loads' windows overlap by " + std::to_string(static_cast<int>(overlap * 100)) +
                              "%: they did not run together");
  }
  Repetition rep;
  rep.ok = true;
  double iterations = 0;
  for (const auto* e : parts) {
    rep.iterations += (*e)["iterations"].get<uint64_t>();
    iterations += Number(*e, "iterations");
  }
  for (const auto& [key, m] : declared) {
    const bool everywhere = std::all_of(parts.begin(), parts.end(), [&](const auto* e) { return e->contains(key); });
    if (!everywhere || m.merge == MergeRule::kDrop || m.merge == MergeRule::kRecompute || key == "iterations") continue;
    if (m.merge == MergeRule::kHistogram) {
      Histogram merged;
      for (const auto* e : parts) merged.Merge(Histogram::FromJson((*e)[key]));
      rep.detail[key] = merged.ToJson("ns");
      continue;
    }
    double value = 0;
    for (const auto* e : parts) {
      const double v = (*e)[key].get<double>();
      if (m.merge == MergeRule::kSum) value += v;
      if (m.merge == MergeRule::kMax) value = std::max(value, v);
      if (m.merge == MergeRule::kWeightedMean && iterations > 0) value += v * Number(*e, "iterations") / iterations;
    }
    rep.metrics[key] = value;
  }
  scenario.Recompute(parts, rep);
  rep.detail["loads"] = parts.size();
  rep.detail["window_overlap"] = overlap;
  return rep;
}

// The merged run: the parameters the scenario makes of the parts', every target named.
RunSpec MergedSpec(const Scenario& scenario, const std::vector<Part>& parts) {
  const nlohmann::json& first = *parts.front().iterations.front();
  RunSpec run;
  run.scenario = first.value("scenario", "");
  run.model = first.value("model", "");
  std::vector<nlohmann::json> params;
  std::set<std::string> targets;
  for (const Part& p : parts) {
    nlohmann::json of_part = (*p.iterations.front())["params"];
    targets.insert(of_part.value("target", ""));
    of_part.erase("target");
    params.push_back(std::move(of_part));
  }
  run.params = scenario.MergedParams(params);
  run.name = RunName(run.scenario, run.model, run.params);
  std::string joined;
  for (const auto& t : targets) joined += (joined.empty() ? "" : ",") + t;
  run.params["target"] = joined;
  return run;
}

// What a sound `load` repetition has, checked before anything is combined: merged figures are only
// as right as their parts, and a hand-edited or corrupted part would pass into them unseen. Every
// metric the scenario declares is checked against its declaration: present where it always is, a
// finite figure in its range, a histogram that holds one value per iteration.
void CheckLoadIteration(const nlohmann::json& e, const MetricSet& declared, const nlohmann::json& keys) {
  if (e["status"] != "ok") {
    if (!e.contains("error") || !e["error"].is_string())
      throw std::invalid_argument("a failed repetition without its error");
    return;
  }
  if (!e.contains("iterations") || !e["iterations"].is_number_unsigned())
    throw std::invalid_argument("iterations is not a count");
  for (const auto& key_json : keys) {
    const std::string key = key_json.get<std::string>();
    const auto it = declared.find(key);
    if (it == declared.end()) throw std::invalid_argument("metric " + key + " has no declaration in context.metrics");
    const Metric& m = it->second;
    if (!e.contains(key)) {
      if (m.always) throw std::invalid_argument("no " + key);
      continue;
    }
    if (m.merge == MergeRule::kHistogram) {
      const Histogram h = Histogram::FromJson(e[key]);
      if (h.count() != e["iterations"].get<uint64_t>()) {
        throw std::invalid_argument("its " + key + " holds " + std::to_string(h.count()) + " values, not its " +
                                    e["iterations"].dump() + " iterations");
      }
      continue;
    }
    const auto& v = e[key];
    if (!v.is_number() || !m.InRange(v.get<double>())) {
      throw std::invalid_argument(
          fmt::format("{} is {}, not a finite figure in [{}, {}]", key, v.dump(), m.minimum, m.maximum));
    }
  }
  const auto& w = e.value("window_unix_s", nlohmann::json());
  if (!w.is_array() || w.size() != 2 || !w[0].is_number() || !w[1].is_number() || !(w[0] <= w[1])) {
    throw std::invalid_argument("no window_unix_s [start, end]: merge cannot tell whether the loads ran together");
  }
  if (const std::string why = FindScenario(e.value("scenario", ""))->Contradiction(e); !why.empty()) {
    throw std::invalid_argument(why);
  }
}

// The fields every entry has, so that nothing below can meet a missing or mistyped one.
void CheckEntry(const nlohmann::json& e) {
  if (!e.is_object()) throw std::invalid_argument("an entry is not an object");
  for (const char* key : {"name", "run_name", "run_type"}) {
    if (!e.contains(key) || !e[key].is_string() || e[key].get<std::string>().empty()) {
      throw std::invalid_argument(std::string("an entry has no ") + key);
    }
  }
  const std::string type = e["run_type"];
  if (type != "iteration" && type != "aggregate") throw std::invalid_argument("run_type '" + type + "'");
  if (type == "iteration" && (!e.contains("status") || (e["status"] != "ok" && e["status"] != "failed"))) {
    throw std::invalid_argument("status is neither ok nor failed");
  }
  if (e.contains("params") && !e["params"].is_object()) throw std::invalid_argument("params is not an object");
}

bool IsLoad(const nlohmann::json& e) {
  const Scenario* scenario = FindScenario(e.value("scenario", ""));
  return e.contains("params") && e["params"].contains("target") && scenario != nullptr && scenario->merges();
}

// The declarations a file carries, and the metric keys of each of its scenarios.
struct Declared {
  MetricSet metrics;
  nlohmann::json scenarios;
};

Declared DeclarationsOf(const ResultsFile& f) {
  const auto& context = f.doc["context"];
  try {
    Declared d{MetricsFromJson(context.value("metrics", nlohmann::json())),
               context.value("scenarios", nlohmann::json::object())};
    if (!d.scenarios.is_object()) throw std::invalid_argument("context.scenarios is not an object");
    return d;
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(f.path + ": " + e.what());
  }
}

void CheckFile(const ResultsFile& f) {
  if (!f.doc.is_object() || !f.doc.contains("context") || !f.doc["context"].is_object() ||
      !f.doc.contains("benchmarks") || !f.doc["benchmarks"].is_array()) {
    throw std::invalid_argument(f.path + ": not a results file (no context and benchmarks)");
  }
  const auto& version = f.doc["context"].value("schema_version", nlohmann::json());
  if (!version.is_number_integer() || version.get<int>() != kSchemaVersion) {
    throw std::invalid_argument(f.path + ": schema_version " + (version.is_null() ? "missing" : version.dump()) +
                                "; this harness reads version " + std::to_string(kSchemaVersion));
  }
  const Declared declared = DeclarationsOf(f);
  for (const auto& e : f.doc["benchmarks"]) {
    try {
      CheckEntry(e);
      if (e["run_type"] == "iteration" && IsLoad(e)) {
        const std::string scenario = e.value("scenario", "");
        if (!declared.scenarios.contains(scenario) ||
            !declared.scenarios[scenario].value("metrics", nlohmann::json()).is_array()) {
          throw std::invalid_argument("context.scenarios has no metrics of scenario " + scenario);
        }
        CheckLoadIteration(e, declared.metrics, declared.scenarios[scenario]["metrics"]);
      }
    } catch (const std::invalid_argument& error) {
      const std::string name = e.is_object() ? e.value("name", "?") : "?";
      throw std::invalid_argument(f.path + ": " + name + ": " + error.what());
    }
  }
}

// Two parts with the same load_id (the salt each load draws for its messages) or the same
// measurement window are one load given twice (a copy, a link, a copy with its windows moved):
// summing them would double its figures.
void CheckDistinct(const std::string& name, const std::vector<Part>& parts) {
  std::map<std::string, std::string> seen;
  for (const Part& p : parts) {
    for (const auto* e : p.iterations) {
      for (const char* key : {"load_id", "window_unix_s"}) {
        if (!e->contains(key)) continue;
        const auto [it, fresh] = seen.emplace(std::string(key) + JsonText((*e)[key]), p.file->path);
        if (!fresh) {
          throw std::invalid_argument(it->second + " and " + p.file->path + " hold the same load of " + name +
                                      " (one " + key + "): a file given twice?");
        }
      }
    }
  }
}

// Repetition i of each load is combined into one: loads with different counts did not run as one.
void CheckRepetitions(const std::string& name, const std::vector<Part>& parts) {
  for (const Part& p : parts) {
    if (p.iterations.size() != parts.front().iterations.size()) {
      throw std::invalid_argument(fmt::format(
          "{} has {} repetitions of {} and {} has {}: loads that ran together have "
          "as many",
          parts.front().file->path, parts.front().iterations.size(), name, p.file->path, p.iterations.size()));
    }
  }
}

// The host of "HOST:PORT" or "[V6]:PORT", and its port; throws for anything else.
Endpoint TargetOf(const nlohmann::json& e) { return ParseEndpoint(e["params"].value("target", ""), false); }

// The usage log must be the log of the server these loads drove.
void CheckServer(const ServerUsage& usage, const std::string& name, const std::vector<Part>& parts) {
  const UsageIdentity& server = usage.log.server;
  const Endpoint listened = ParseEndpoint(server.address, false);
  const bool everywhere = listened.host == "0.0.0.0" || listened.host == "::";
  for (const Part& p : parts) {
    const nlohmann::json& e = *p.iterations.front();
    const Endpoint target = TargetOf(e);
    const std::string model = e.value("model", "");
    if (target.port != listened.port || (!everywhere && target.host != listened.host) ||
        (model != "external" && model != server.model)) {
      throw std::invalid_argument(
          fmt::format("{} is the log of {} at {} (pid {} on {}), not of the server {} in {} "
                      "drove ({} at {})",
                      usage.path, server.model, server.address, server.pid, server.host, name, p.file->path, model,
                      target.ToString()));
    }
  }
}

// The server's figures over the loads' windows of one combined repetition, from its usage log.
void ChargeServer(const ServerUsage& usage, const std::vector<const nlohmann::json*>& parts, Repetition& rep) {
  double start = 1e300, end = -1e300;  // the union of the windows
  for (const auto* e : parts) {
    start = std::min(start, (*e)["window_unix_s"][0].get<double>());
    end = std::max(end, (*e)["window_unix_s"][1].get<double>());
  }
  std::string why;
  const double cpu_ns =
      ServerFiguresOver(usage.log.samples, start, end, static_cast<double>(rep.iterations), rep.metrics, &why);
  if (cpu_ns < 0) {
    rep.warnings.push_back("no server figures: " + usage.path + " " + why);
    return;
  }
  rep.cpu_time_ns = cpu_ns;
  rep.detail["server_window_unix_s"] = {start, end};
}

std::vector<nlohmann::json> MergeRun(const std::string& name, const std::vector<Part>& parts, int family,
                                     const MetricSet& declared, const ServerUsage* usage) {
  std::vector<std::string> sources;
  for (const Part& p : parts) {
    if (p.iterations.empty()) throw std::invalid_argument(p.file->path + ": run " + name + " has no repetitions");
    if (!IsLoad(*p.iterations.front())) {
      throw std::invalid_argument("run " + name + " is in " + parts[0].file->path + " and " + p.file->path +
                                  ": only results of `load` (loads of one server at the same time) merge");
    }
    sources.push_back(p.file->path);
  }
  CheckDistinct(name, parts);
  CheckRepetitions(name, parts);
  if (usage != nullptr) CheckServer(*usage, name, parts);
  const Scenario& scenario = *FindScenario(parts.front().iterations.front()->value("scenario", ""));
  const size_t repetitions = parts.front().iterations.size();
  std::vector<Repetition> reps;
  for (size_t r = 0; r < repetitions; ++r) {
    std::vector<const nlohmann::json*> of_r;
    for (const Part& p : parts) of_r.push_back(p.iterations[r]);
    reps.push_back(Combine(scenario, declared, of_r, sources));
    if (usage != nullptr && reps.back().ok) ChargeServer(*usage, of_r, reps.back());
  }
  RunSpec run = MergedSpec(scenario, parts);
  run.repetitions = static_cast<int>(repetitions);
  std::vector<nlohmann::json> out;
  for (size_t r = 0; r < reps.size(); ++r) out.push_back(IterationEntry(run, reps[r], static_cast<int>(r), family, 0));
  if (reps.size() > 1) {  // as the runner does: no aggregates of a single repetition
    for (auto& a : AggregateEntries(run, reps, family, 0, declared)) out.push_back(std::move(a));
  }
  return out;
}

// The union of the files' declarations; one metric or scenario declared differently by two files is
// refused (the files come from different harnesses: their figures do not mean the same).
void UniteDeclarations(const std::vector<ResultsFile>& files, nlohmann::json& context) {
  context["metrics"] = nlohmann::json::object();
  context["scenarios"] = nlohmann::json::object();
  std::map<std::string, std::string> first_of;  // "metrics/KEY" -> the file that declared it first
  for (const ResultsFile& f : files) {
    for (const char* part : {"metrics", "scenarios"}) {
      const nlohmann::json declared = f.doc["context"].value(part, nlohmann::json::object());
      for (const auto& [key, value] : declared.items()) {
        auto& slot = context[part][key];
        if (slot.is_null()) {
          slot = value;
          first_of[std::string(part) + "/" + key] = f.path;
        } else if (slot != value) {
          throw std::invalid_argument(f.path + " and " + first_of[std::string(part) + "/" + key] + " declare " +
                                      (std::string(part) == "metrics" ? "metric " : "scenario ") + key +
                                      " differently: their figures do not mean the same");
        }
      }
    }
  }
}

}  // namespace

nlohmann::json MergeResults(const std::vector<ResultsFile>& files, const std::string& command_line,
                            const ServerUsage* server_usage) {
  if (files.empty()) throw std::invalid_argument("merge: no files");
  std::vector<std::string> order;                  // run names in order of first appearance
  std::map<std::string, std::vector<Part>> parts;  // by run name, one per file
  for (const ResultsFile& f : files) {
    CheckFile(f);
    for (const auto& e : f.doc["benchmarks"]) {
      const std::string name = e.value("run_name", e.value("name", ""));
      auto& list = parts[name];
      if (list.empty()) order.push_back(name);
      if (list.empty() || list.back().file != &f) list.push_back({&f, {}});
      if (e.value("run_type", "iteration") == "iteration") list.back().iterations.push_back(&e);
    }
  }
  nlohmann::json doc;
  doc["context"] = files.front().doc["context"];
  doc["context"]["command_line"] = command_line;
  UniteDeclarations(files, doc["context"]);
  const MetricSet declared = MetricsFromJson(doc["context"]["metrics"]);
  doc["context"]["merged_from"] = nlohmann::json::array();
  for (const ResultsFile& f : files) {
    doc["context"]["merged_from"].push_back({{"file", f.path},
                                             {"command_line", f.doc["context"].value("command_line", "")},
                                             {"host_name", f.doc["context"].value("host_name", "")}});
  }
  if (server_usage != nullptr) doc["context"]["server_usage"] = server_usage->path;
  doc["benchmarks"] = nlohmann::json::array();
  int family = 0;
  for (const std::string& name : order) {
    const auto& list = parts[name];
    if (list.size() == 1) {
      for (const auto& e : list.front().file->doc["benchmarks"]) {
        if (e.value("run_name", e.value("name", "")) != name) continue;
        nlohmann::json copy = e;
        copy["family_index"] = family;
        doc["benchmarks"].push_back(std::move(copy));
      }
    } else {
      for (auto& e : MergeRun(name, list, family, declared, server_usage)) doc["benchmarks"].push_back(std::move(e));
    }
    ++family;
  }
  return doc;
}

}  // namespace harness
