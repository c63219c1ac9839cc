// Runs planned runs one after another: for each, its repetitions, then its aggregates; the results
// file is rewritten after every repetition. Prints progress on stderr and a summary on stdout.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "harness/noise.h"
#include "harness/results.h"
#include "harness/scenario.h"

namespace harness {

struct PlannedRun {
  Scenario* scenario;
  RunSpec spec;
};

// Plans every selected scenario; throws std::invalid_argument on bad options (exit 2).
std::vector<PlannedRun> PlanAll(const std::vector<std::string>& scenarios, const Options& options);

// Set by a signal handler: the runner stops before the next repetition.
extern std::atomic<bool> g_interrupted;

// When repetitions start, for loads on several hosts that must measure together (`load
// --start-at`): the k-th repetition measured (in the runner's interleaved order, the same for every
// load given the same flags) starts at start_unix + k * period_s, wall clock; one that would start
// late starts at once, and its window then overlaps its partners' less (merge says so).
struct Schedule {
  double start_unix = 0;
  double period_s = 0;
};

// Returns the number of repetitions that failed. `probe` measures each repetition's noise; a noisy
// one (harness/noise.h) is marked "excluded" in its entry, left out of the aggregates and measured
// again in a later round, up to the run's `redo` times (RunSpec).
int RunAll(std::vector<PlannedRun>& runs, ResultsWriter& writer, const Schedule* schedule = nullptr,
           const NoiseProbe& probe = RealNoise());

// The summary table over the median (or single) entries of the document.
std::string SummaryTable(const nlohmann::json& document);

}  // namespace harness
