// `merge`: one results file from several, for one report or comparison.
//
// Runs found in one file are copied as they are. A run found in several files must come from `load`
// of a scenario that merges (Scenario::merges()): load generators that drove one server at the same
// time, so repetition i of each is combined into one repetition i, every metric by the rule the
// files declare for it (context.metrics: summed, weighted by iterations, the largest, histograms
// merged exactly, recomputed by the scenario from the merged others, or dropped). A repetition
// whose parts' measurement windows (window_unix_s) overlap by less than half is failed: those loads
// did not run together. Aggregates are computed again from the combined repetitions.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace harness {

struct ResultsFile {
  std::string path;
  nlohmann::json doc;
};

// Throws std::invalid_argument for a file that is not a results file or a run that cannot merge.
nlohmann::json MergeResults(const std::vector<ResultsFile>& files, const std::string& command_line);

}  // namespace harness
