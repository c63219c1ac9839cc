// What a figure means, declared once by the scenario that reports it and carried in every results
// file (`context.metrics`, keyed by the metric's name), so that the summary table, `merge`,
// //plots:compare, the report's tables and the validation read the meaning from the file instead of
// from lists of names of their own. A declaration in a scenario:
//
//   {.key = "requests_per_second", .unit = "1/s", .meaning = "requests answered per second",
//    .better = Better::kHigher, .merge = MergeRule::kSum, .label = "req/s", .format = ".0f",
//    .always = true, .compared = true, .column = true}
//
// The harness declares Google Benchmark's own three (iterations, real_time, cpu_time): CoreMetrics().
#pragma once

#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace harness {

// Which way a change is an improvement; kNone: neither (a count of the setup, a lower bound).
enum class Better { kHigher, kLower, kNone };

// How the repetitions of a run aggregate: kStatistics, into the mean, median, stddev and cv
// entries; kNone, not at all (a histogram: the plots merge those of every repetition).
enum class Aggregation { kStatistics, kNone };

// How the figures of concurrent loads of one server combine (`merge`), repetition by repetition:
// kSum (the loads ran at the same time, so rates add up), kWeightedMean (by the parts' iterations),
// kMax, kHistogram (bucket counts added), kRecompute (the scenario computes it from the merged
// others: Scenario::Recompute), kDrop (not in the merged entry: no sound combination).
enum class MergeRule { kSum, kWeightedMean, kMax, kHistogram, kRecompute, kDrop };

struct Metric {
  std::string key{};      // the field of the result entry
  std::string unit{};     // "1/s", "us", "bytes", "s", "count", "fraction", "ns", "ns/op", ...
  std::string meaning{};  // one line
  Better better = Better::kNone;
  Aggregation aggregate = Aggregation::kStatistics;
  MergeRule merge = MergeRule::kDrop;
  // Display: the column header, a fixed-point format of the scaled value (".0f", ".2f"), and the
  // scale from the unit to the displayed one (bytes to MiB: 1/2^20).
  std::string label{};
  std::string format = ".2f";
  double scale = 1;
  // The range of one repetition's value: a figure outside it is refused (merge, validation).
  double minimum = 0;
  double maximum = std::numeric_limits<double>::infinity();
  bool always = false;    // every ok repetition of the scenario has it
  bool compared = false;  // //plots:compare tests it (the CI gate): the figures a regression shows in
  bool column = false;    // a column of the scenario's summary table (Scenario::columns())

  // The file's form: {"unit", "meaning", "better": "higher" | "lower" | "none", "aggregate":
  // "statistics" | "none", "merge": "sum" | ..., "display": {"label", "format", "scale"},
  // "minimum", "maximum" (absent: none), "always", "compared"}.
  nlohmann::json ToJson() const;
  // Throws std::invalid_argument naming what is wrong.
  static Metric FromJson(const std::string& key, const nlohmann::json& j);
  // True when a value is inside [minimum, maximum], give or take rounding.
  bool InRange(double value) const;
};

using MetricSet = std::map<std::string, Metric>;

// iterations, real_time and cpu_time: every entry's, declared by the harness.
const std::vector<Metric>& CoreMetrics();

// {key: declaration} of a set, as in `context.metrics`.
nlohmann::json MetricsToJson(const MetricSet& metrics);
// The declarations of a results file's context (`context.metrics`); throws std::invalid_argument.
MetricSet MetricsFromJson(const nlohmann::json& metrics);

}  // namespace harness
