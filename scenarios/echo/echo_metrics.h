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

// --work with two classes: the percentiles of each class's latency and slowdown (short_p50_us,
// long_p99_us, short_slowdown_p99 ...) and the long class's share, into `metrics`; the histograms
// they come from into `histograms` ({"short": {"latency", "slowdown"}, "long": ...}).
void PutClassMetrics(const std::vector<harness::Histogram>& latency, const std::vector<harness::Histogram>& slowdown,
                     nlohmann::json& metrics, nlohmann::json& histograms);
// The same from the histograms of several loads' entries (`merge`); nothing if one has none.
void RecomputeClassMetrics(const std::vector<const nlohmann::json*>& parts, nlohmann::json& metrics,
                           nlohmann::json& histograms);

// Jain's index of the union of parts, each with its connections, iterations and fairness.
double CombinedFairness(const std::vector<const nlohmann::json*>& parts);

}  // namespace echo
