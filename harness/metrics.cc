#include "harness/metrics.h"

#include <cmath>
#include <stdexcept>

namespace harness {
namespace {

template <typename Enum>
struct Names {
  Enum value;
  const char* name;
};

constexpr Names<Better> kBetter[] = {{Better::kHigher, "higher"}, {Better::kLower, "lower"}, {Better::kNone, "none"}};
constexpr Names<Aggregation> kAggregation[] = {{Aggregation::kStatistics, "statistics"}, {Aggregation::kNone, "none"}};
constexpr Names<MergeRule> kMerge[] = {{MergeRule::kSum, "sum"},
                                       {MergeRule::kWeightedMean, "weighted_mean"},
                                       {MergeRule::kMax, "max"},
                                       {MergeRule::kHistogram, "histogram"},
                                       {MergeRule::kRecompute, "recompute"},
                                       {MergeRule::kDrop, "drop"}};

template <typename Enum, size_t N>
const char* NameOf(const Names<Enum> (&names)[N], Enum value) {
  for (const auto& n : names) {
    if (n.value == value) return n.name;
  }
  return "?";
}

template <typename Enum, size_t N>
Enum ValueOf(const Names<Enum> (&names)[N], const nlohmann::json& j, const char* field) {
  if (j.is_string()) {
    for (const auto& n : names) {
      if (j == n.name) return n.value;
    }
  }
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + std::string(n.name);
  throw std::invalid_argument(std::string(field) + " is " + j.dump() + ", not one of " + known);
}

}  // namespace

nlohmann::json Metric::ToJson() const {
  nlohmann::json j = {{"unit", unit},
                      {"meaning", meaning},
                      {"better", NameOf(kBetter, better)},
                      {"aggregate", NameOf(kAggregation, aggregate)},
                      {"merge", NameOf(kMerge, merge)},
                      {"display", {{"label", label.empty() ? key : label}, {"format", format}, {"scale", scale}}},
                      {"minimum", minimum},
                      {"always", always},
                      {"compared", compared}};
  if (std::isfinite(maximum)) j["maximum"] = maximum;  // JSON has no infinity: absent is none
  return j;
}

Metric Metric::FromJson(const std::string& key, const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("metric " + key + ": not an object");
  try {
    Metric m;
    m.key = key;
    m.unit = j.at("unit").get<std::string>();
    m.meaning = j.at("meaning").get<std::string>();
    m.better = ValueOf(kBetter, j.at("better"), "better");
    m.aggregate = ValueOf(kAggregation, j.at("aggregate"), "aggregate");
    m.merge = ValueOf(kMerge, j.at("merge"), "merge");
    const auto& display = j.at("display");
    m.label = display.at("label").get<std::string>();
    m.format = display.at("format").get<std::string>();
    m.scale = display.at("scale").get<double>();
    m.minimum = j.at("minimum").get<double>();
    if (j.contains("maximum")) m.maximum = j["maximum"].get<double>();
    m.always = j.at("always").get<bool>();
    m.compared = j.at("compared").get<bool>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("metric " + key + ": " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("metric " + key + ": " + e.what());
  }
}

bool Metric::InRange(double value) const {
  const double slack = 1e-6 * std::max(1.0, std::fabs(maximum));  // Jain's index can come out 1 + 1e-16
  return std::isfinite(value) && value >= minimum && value <= maximum + (std::isfinite(maximum) ? slack : 0);
}

const std::vector<Metric>& CoreMetrics() {
  static const std::vector<Metric> core = {
      {.key = "iterations",
       .unit = "count",
       .meaning = "operations counted in the repetition (messages, items, calls)",
       .merge = MergeRule::kSum,
       .label = "iterations",
       .format = ".0f",
       .always = true},
      {.key = "real_time",
       .unit = "ns",
       .meaning = "wall time per operation",
       .better = Better::kLower,
       .merge = MergeRule::kRecompute,
       .label = "time/op ns",
       .format = ".1f",
       .always = true,
       .compared = true},
      {.key = "cpu_time",
       .unit = "ns",
       .meaning = "CPU time per operation of the side measured: the server's for a scenario with a load generator "
                  "(the load generator's when no server is sampled), else the measuring process's",
       .better = Better::kLower,
       .merge = MergeRule::kRecompute,
       .label = "cpu/op ns",
       .format = ".1f",
       .always = true,
       .compared = true},
  };
  return core;
}

nlohmann::json MetricsToJson(const MetricSet& metrics) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, m] : metrics) out[key] = m.ToJson();
  return out;
}

MetricSet MetricsFromJson(const nlohmann::json& metrics) {
  if (!metrics.is_object()) throw std::invalid_argument("no metric declarations (context.metrics)");
  MetricSet out;
  for (const auto& [key, j] : metrics.items()) out.emplace(key, Metric::FromJson(key, j));
  return out;
}

}  // namespace harness
