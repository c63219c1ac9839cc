#include "harness/scenario.h"

#include <algorithm>
#include <stdexcept>

namespace harness {
namespace {

std::vector<std::unique_ptr<Scenario>>& Registry() {
  static auto* scenarios = new std::vector<std::unique_ptr<Scenario>>();
  return *scenarios;
}

std::string ValueText(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

void RegisterScenario(std::unique_ptr<Scenario> scenario) { Registry().push_back(std::move(scenario)); }

const std::vector<std::unique_ptr<Scenario>>& Scenarios() { return Registry(); }

Scenario* FindScenario(const std::string& name) {
  for (const auto& s : Registry()) {
    if (s->name() == name) return s.get();
  }
  return nullptr;
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

}  // namespace harness
