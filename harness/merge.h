// `merge`: one results file from several, for one report or comparison.
//
// Runs found in one file are copied as they are. A run found in several files must come from `load`
// (its params name a target): those are load generators that drove one server at the same time, so
// repetition i of each is combined into one repetition i: counts and rates summed, latency
// histograms merged exactly and percentiles read from the merged histogram (never averaged),
// Jain's fairness recombined exactly from each part's connections, messages and index, and the
// load generators' CPU per message weighted by their messages. Server figures are dropped: each
// load divided the server's CPU by its own messages only. A repetition whose parts' measurement
// windows overlap by less than half is failed: those loads did not run together. Aggregates are
// computed again from the combined repetitions.
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
