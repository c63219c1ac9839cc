#include "harness/merge.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "harness/histogram.h"
#include "harness/results.h"
#include "harness/scenario.h"

namespace harness {
namespace {

// Fields summed across loads; the rates too, since the loads ran at the same time.
const char* const kSums[] = {"msgs_per_second", "bytes_per_second", "wrong_bytes", "broken_connections", "errors",
                             "lost", "connections", "starved_connections"};

// One run as it appears in one file.
struct Part {
  const ResultsFile* file;
  std::vector<const nlohmann::json*> iterations;  // by position in the file
};

double Number(const nlohmann::json& e, const char* key) { return e.contains(key) ? e[key].get<double>() : 0; }

// Jain's index of the union of parts, each with n connections, sum s of messages and index j:
// sum of squares of a part = s^2 / (n j), so the whole is (sum s)^2 / (sum n * sum s^2 / (n j)).
double CombinedFairness(const std::vector<const nlohmann::json*>& parts) {
  double total = 0, connections = 0, squares = 0;
  for (const auto* e : parts) {
    const double s = Number(*e, "iterations"), n = Number(*e, "connections"), j = Number(*e, "fairness");
    total += s;
    connections += n;
    if (s > 0 && n > 0 && j > 0) squares += s * s / (n * j);
  }
  return squares > 0 ? total * total / (connections * squares) : 0;
}

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

Repetition Combine(const std::vector<const nlohmann::json*>& parts, const std::vector<std::string>& sources) {
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
  Histogram latency;
  double client_cpu = 0, warmup = 0;
  for (const auto* e : parts) {
    rep.iterations += (*e)["iterations"].get<uint64_t>();
    latency.Merge(Histogram::FromJson((*e)["latency_histogram"]));
    client_cpu += Number(*e, "client_cpu_us_per_msg") * Number(*e, "iterations");
    warmup = std::max(warmup, Number(*e, "warmup_s"));
    for (const char* key : kSums) {
      if (e->contains(key)) rep.metrics[key] = rep.metrics.value(key, 0.0) + (*e)[key].get<double>();
    }
  }
  const double messages = static_cast<double>(rep.iterations);
  auto& m = rep.metrics;
  PutLatencyMetrics(latency, m);
  m["fairness"] = CombinedFairness(parts);
  m["warmup_s"] = warmup;
  if (m.contains("lost")) m["loss_rate"] = m["lost"].get<double>() / (messages + m["lost"].get<double>());
  if (messages > 0) {
    m["client_cpu_us_per_msg"] = client_cpu / messages;
    rep.cpu_time_ns = client_cpu * 1e3 / messages;
  }
  const double rate = m.value("msgs_per_second", 0.0);
  rep.real_time_ns = rate > 0 ? 1e9 / rate : 0;
  rep.detail["latency_histogram"] = latency.ToJson("ns");
  rep.detail["loads"] = parts.size();
  rep.detail["window_overlap"] = overlap;
  return rep;
}

// The merged run: the parts' parameters with connections summed and every target named.
RunSpec MergedSpec(const std::vector<Part>& parts) {
  const nlohmann::json& first = *parts.front().iterations.front();
  RunSpec run;
  run.scenario = first.value("scenario", "");
  run.model = first.value("model", "");
  run.params = first["params"];
  run.params.erase("target");
  uint64_t connections = 0;
  std::set<std::string> targets;
  for (const Part& p : parts) {
    const nlohmann::json& params = (*p.iterations.front())["params"];
    connections += params.value("connections", uint64_t{0});
    targets.insert(params.value("target", ""));
  }
  run.params["connections"] = connections;
  run.name = RunName(run.scenario, run.model, run.params);
  std::string joined;
  for (const auto& t : targets) joined += (joined.empty() ? "" : ",") + t;
  run.params["target"] = joined;
  return run;
}

// A finite, non-negative number, or the reason it is not.
std::string NotAFigure(const nlohmann::json& e, const char* key) {
  if (!e.contains(key)) return std::string("no ") + key;
  const auto& v = e[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0) {
    return std::string(key) + " is " + v.dump() + ", not a finite figure >= 0";
  }
  return "";
}

// What a sound `load` repetition has, checked before anything is combined: merged figures are only
// as right as their parts, and a hand-edited or corrupted part would pass into them unseen.
void CheckLoadIteration(const nlohmann::json& e) {
  if (e["status"] != "ok") {
    if (!e.contains("error") || !e["error"].is_string()) throw std::invalid_argument("a failed repetition without its error");
    return;
  }
  for (const char* key : {"msgs_per_second", "bytes_per_second", "client_cpu_us_per_msg", "warmup_s", "fairness"}) {
    if (std::string why = NotAFigure(e, key); !why.empty()) throw std::invalid_argument(why);
  }
  for (const char* key : kSums) {
    if (e.contains(key)) {
      if (std::string why = NotAFigure(e, key); !why.empty()) throw std::invalid_argument(why);
    }
  }
  if (!e.contains("iterations") || !e["iterations"].is_number_unsigned()) throw std::invalid_argument("iterations is not a count");
  if (!e.contains("connections") || !e["connections"].is_number_unsigned() || e["connections"] == 0) {
    throw std::invalid_argument("connections is not a count >= 1");
  }
  if (e["fairness"].get<double>() > 1) throw std::invalid_argument("fairness is above 1");
  const auto& w = e.value("window_unix_s", nlohmann::json());
  if (!w.is_array() || w.size() != 2 || !w[0].is_number() || !w[1].is_number() || !(w[0] <= w[1])) {
    throw std::invalid_argument("no window_unix_s [start, end]: merge cannot tell whether the loads ran together");
  }
  if (!e.contains("latency_histogram")) throw std::invalid_argument("no latency_histogram");
  const Histogram h = Histogram::FromJson(e["latency_histogram"]);
  if (h.count() != e["iterations"].get<uint64_t>()) {
    throw std::invalid_argument("its latency histogram holds " + std::to_string(h.count()) + " round trips, not its " +
                                e["iterations"].dump() + " iterations");
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
  return e.contains("params") && e["params"].contains("target") && scenario != nullptr && scenario->has_client();
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
  for (const auto& e : f.doc["benchmarks"]) {
    try {
      CheckEntry(e);
      if (e["run_type"] == "iteration" && IsLoad(e)) CheckLoadIteration(e);
    } catch (const std::invalid_argument& error) {
      const std::string name = e.is_object() ? e.value("name", "?") : "?";
      throw std::invalid_argument(f.path + ": " + name + ": " + error.what());
    }
  }
}

// Two parts with the same measurement window are one load given twice (a copy, a link): summing
// them would double its figures.
void CheckDistinct(const std::string& name, const std::vector<Part>& parts) {
  std::map<std::string, std::string> windows;
  for (const Part& p : parts) {
    for (const auto* e : p.iterations) {
      if (!e->contains("window_unix_s")) continue;
      const auto [it, fresh] = windows.emplace((*e)["window_unix_s"].dump(), p.file->path);
      if (!fresh) {
        throw std::invalid_argument(it->second + " and " + p.file->path + " hold the same load of " + name +
                                    " (identical windows): a file given twice?");
      }
    }
  }
}

std::vector<nlohmann::json> MergeRun(const std::string& name, const std::vector<Part>& parts, int family) {
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
  size_t repetitions = SIZE_MAX;
  for (const Part& p : parts) repetitions = std::min(repetitions, p.iterations.size());
  std::vector<Repetition> reps;
  for (size_t r = 0; r < repetitions; ++r) {
    std::vector<const nlohmann::json*> of_r;
    for (const Part& p : parts) of_r.push_back(p.iterations[r]);
    reps.push_back(Combine(of_r, sources));
  }
  RunSpec run = MergedSpec(parts);
  run.repetitions = static_cast<int>(repetitions);
  std::vector<nlohmann::json> out;
  for (size_t r = 0; r < reps.size(); ++r) out.push_back(IterationEntry(run, reps[r], static_cast<int>(r), family, 0));
  if (reps.size() > 1) {  // as the runner does: no aggregates of a single repetition
    for (auto& a : AggregateEntries(run, reps, family, 0)) out.push_back(std::move(a));
  }
  return out;
}

}  // namespace

nlohmann::json MergeResults(const std::vector<ResultsFile>& files, const std::string& command_line) {
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
  doc["context"]["merged_from"] = nlohmann::json::array();
  for (const ResultsFile& f : files) {
    doc["context"]["merged_from"].push_back(
        {{"file", f.path}, {"command_line", f.doc["context"].value("command_line", "")},
         {"host_name", f.doc["context"].value("host_name", "")}});
  }
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
      for (auto& e : MergeRun(name, list, family)) doc["benchmarks"].push_back(std::move(e));
    }
    ++family;
  }
  return doc;
}

}  // namespace harness
