// What echo reports, declared once (harness/metrics.h), and the figures computed the same way by a
// window and by a merge of loads.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "harness/histogram.h"
#include "harness/metrics.h"

namespace echo {

// Every figure an echo entry may hold: the summary table, `merge`, //plots:compare, the report and
// the validation read these from the results file.
std::vector<harness::Metric> Metrics();

// p50_us, p90_us, p99_us, p999_us, max_us and mean_us of a histogram of nanoseconds.
void PutLatencyMetrics(const harness::Histogram& ns, nlohmann::json& metrics);

// Jain's index of the union of parts, each with its connections, iterations and fairness.
double CombinedFairness(const std::vector<const nlohmann::json*>& parts);

}  // namespace echo
