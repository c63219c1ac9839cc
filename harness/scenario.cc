#include "harness/scenario.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace harness {
namespace {

std::string ValueText(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

std::vector<std::string> Scenario::columns() const {
  std::vector<std::string> keys;
  for (const Metric& m : metrics()) {
    if (m.column) keys.push_back(m.key);
  }
  return keys;
}

MetricSet MetricsOf(const Scenario& scenario) {
  MetricSet set;
  for (const Metric& m : CoreMetrics()) set.emplace(m.key, m);
  for (const Metric& m : scenario.metrics()) set.emplace(m.key, m);
  return set;
}

void CheckDeclarations(const std::vector<const Scenario*>& scenarios) {
  std::map<std::string, std::pair<std::string, nlohmann::json>> declared;  // key -> (by whom, declaration)
  for (const Metric& m : CoreMetrics()) declared[m.key] = {"the harness", m.ToJson()};
  for (const Scenario* s : scenarios) {
    std::set<std::string> own;
    for (const Metric& m : s->metrics()) {
      const std::string where = "scenario " + s->name() + ": metric " + m.key;
      if (m.key.empty() || !own.insert(m.key).second) throw std::logic_error(where + " is declared twice or unnamed");
      if (m.merge == MergeRule::kRecompute && !s->merges()) {
        throw std::logic_error(where + " merges by recomputing, and the scenario does not merge");
      }
      const auto [it, fresh] = declared.try_emplace(m.key, "scenario " + s->name(), m.ToJson());
      if (!fresh && it->second.second != m.ToJson()) {
        throw std::logic_error(where + " is also declared, differently, by " + it->second.first +
                               ": a results file holds one declaration per metric");
      }
    }
    for (const std::string& key : s->columns()) {
      if (!declared.count(key) || (!own.count(key) && declared[key].first != "the harness")) {
        throw std::logic_error("scenario " + s->name() + ": column " + key + " is not one of its metrics");
      }
    }
  }
}

nlohmann::json DeclarationsJson(const std::vector<const Scenario*>& scenarios) {
  nlohmann::json out = {{"metrics", nlohmann::json::object()}, {"scenarios", nlohmann::json::object()}};
  for (const Scenario* s : scenarios) {
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& [key, m] : MetricsOf(*s)) {
      out["metrics"][key] = m.ToJson();
      keys.push_back(key);
    }
    out["scenarios"][s->name()] = {{"metrics", keys}, {"columns", s->columns()}};
  }
  return out;
}

std::vector<nlohmann::json> ParamProduct(const std::vector<ParamInfo>& params, const Options& options,
                                         const std::vector<std::string>& used,
                                         nlohmann::json (*parse)(const std::string&, const std::string&)) {
  std::vector<nlohmann::json> product{nlohmann::json::object()};
  for (const ParamInfo& p : params) {
    if (std::find(used.begin(), used.end(), p.name) == used.end()) continue;
    std::string raw;
    if (auto given = options.params.find(p.name); given != options.params.end()) {
      raw = given->second;
    } else if (auto def = p.by_profile.find(options.profile); def != p.by_profile.end()) {
      raw = def->second;
    } else {
      continue;
    }
    std::vector<nlohmann::json> values;
    std::vector<std::string> items;
    try {
      items = SplitList(raw);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--" + p.name + ": " + e.what());
    }
    for (const std::string& item : items) values.push_back(parse(p.name, item));
    std::vector<nlohmann::json> next;
    for (const auto& partial : product) {
      for (const auto& v : values) {
        nlohmann::json extended = partial;
        extended[p.name] = v;
        next.push_back(std::move(extended));
      }
    }
    product = std::move(next);
  }
  return product;
}

std::string RunName(const std::string& scenario, const std::string& model, const nlohmann::json& params) {
  std::string name = scenario + "/" + model;
  for (const auto& [key, value] : params.items()) name += "/" + key + ":" + ValueText(value);
  return name;
}

RunSpec NewRun(const Scenario& scenario, const std::string& model, nlohmann::json params, const Options& options) {
  RunSpec run;
  run.scenario = scenario.name();
  run.model = model;
  run.name = RunName(run.scenario, run.model, params);
  run.params = std::move(params);
  run.duration = options.duration.value_or(scenario.default_duration(options.profile));
  run.warmup = options.warmup.value_or(scenario.default_warmup(options.profile));
  run.repetitions = options.repetitions.value_or(scenario.default_repetitions(options.profile));
  run.target = options.target;
  run.server_pid = options.server_pid;
  run.self_path = options.self_path;
  return run;
}

}  // namespace harness
