// `merge`: one results file from several, for one report or comparison.
//
// Runs found in one file are copied as they are. A run found in several files must come from `load`
// of a scenario that merges (Scenario::merges()): load generators that drove one server at the same
// time, so repetition i of each is combined into one repetition i, every metric by the rule the
// files declare for it (context.metrics: summed, weighted by iterations, the largest, histograms
// merged exactly, recomputed by the scenario from the merged others, or dropped). A repetition
// whose parts' measurement windows (window_unix_s) overlap by less than half is failed: those loads
// did not run together. Aggregates are computed again from the combined repetitions.
//
// Server figures are dropped (each load divided the server's CPU by its own messages), unless the
// server's usage log is given (`serve --usage`, server_usage.h): each combined repetition is then
// charged with the server's CPU from the earliest start to the latest end of its loads' windows,
// divided by all their messages. The log must name the server the loads drove (its port, its address
// unless it listened on every address, and its model unless the loads called it `external`).
//
// Refused (std::invalid_argument): parts with different repetition counts, one load given twice
// (two parts with one load_id, the salt a load draws for its messages), and parts whose figures
// contradict their own iterations and window (Scenario::Contradiction) or histograms.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/server_usage.h"

namespace harness {

struct ResultsFile {
  std::string path;
  nlohmann::json doc;
};

struct ServerUsage {
  std::string path;
  UsageFile log;
};

// Throws std::invalid_argument for a file that is not a results file or a run that cannot merge.
nlohmann::json MergeResults(const std::vector<ResultsFile>& files, const std::string& command_line,
                            const ServerUsage* server_usage = nullptr);

}  // namespace harness
