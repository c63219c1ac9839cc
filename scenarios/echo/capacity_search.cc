#include "scenarios/echo/capacity_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "harness/stats.h"

namespace echo {
namespace {

// The keys a step records of its windows (medians), beside its verdict.
constexpr const char* kRecorded[] = {
    "msgs_per_second",      "mean_us", "p50_us", "p99_us", "p999_us", "server_cpu_us_per_msg", "client_cpu_utilization",
    "server_peak_rss_bytes"};

double MedianOf(const std::vector<harness::Repetition>& windows, const std::string& key) {
  std::vector<double> values;
  for (const auto& w : windows) values.push_back(w.metrics.value(key, 0.0));
  return harness::Median(values);
}

double WorstOf(const std::vector<harness::Repetition>& windows, const std::string& key) {
  double most = 0;
  for (const auto& w : windows) most = std::max(most, w.metrics.value(key, 0.0));
  return most;
}

bool Noisy(const harness::Repetition& window) {
  return window.detail.contains("noise") && window.detail["noise"].value("noisy", false);
}

// The load generator's own lateness at p99 over kLateShare of the SLO's tightest bound: the
// window's latency is then as much the load generator's as the server's. Or the gaps between its
// sends strayed from its schedule's (ArrivalsStrayed): a stall, whose held sends then queued at a
// server near its capacity as one burst (3 ms at 27,000 msgs/s is 80 requests at once).
bool Late(const harness::Repetition& window, const std::vector<SloBound>& slo) {
  double tightest = slo.front().bound_us();
  for (const SloBound& b : slo) tightest = std::min(tightest, b.bound_us());
  const auto& m = window.metrics;
  const bool stalled = m.contains("arrival_cv") && m.contains("scheduled_arrival_cv") &&
                       ArrivalsStrayed(m["arrival_cv"].get<double>(), m["scheduled_arrival_cv"].get<double>());
  return stalled || m.value("send_lateness_p99_us", 0.0) > kLateShare * tightest;
}

// Why a step with only `clean` windows beside `noisy` and `late` ones set aside is not judged;
// `worst`: the largest share of a CPU under test others took in one of them.
std::string WhyUnjudged(double rate, int noisy, int late, size_t clean, double worst) {
  return fmt::format(
      "{} of {} windows at {:.0f} msgs/s lost their CPUs to others or the hypervisor (up to {:.0f}% "
      "of a CPU){}",
      noisy, noisy + late + clean, rate, worst * 100,
      late > 0 ? fmt::format(", {} more had the load generator's own sends late", late) : "");
}

}  // namespace

CapacitySearch::CapacitySearch(std::vector<SloBound> slo, MeasureWindow measure, CapacityLimits limits,
                               const std::atomic<bool>* stop)
    : slo_(std::move(slo)), measure_(std::move(measure)), limits_(limits), stop_(stop) {}

// A step's windows are its clean ones: a window whose CPUs others took, or in which the load
// generator sent late, says nothing of the rate and is measured again, up to `noisy_redos` of them.
// Past those a late window is judged, a noisy one never: the step stands on the windows it has, if
// they are most of `windows_per_step`; else it is not judged (Step::unjudged), and the search stops. The closed-loop
// probe only sets the scale: past the redos its last window serves.
CapacitySearch::Step CapacitySearch::Measure(double rate, bool check) {
  const size_t wanted = rate > 0 ? limits_.windows_per_step : 1;
  const size_t most = wanted + std::max(0, limits_.noisy_redos);
  std::vector<harness::Repetition> windows;
  harness::Repetition set_aside;
  int noisy = 0, late = 0;
  double worst = 0;  // the largest share of a CPU under test others took, in a window set aside
  while (windows.size() < wanted && windows.size() + static_cast<size_t>(noisy + late) < most && !stopped()) {
    harness::Repetition window = measure_(rate);
    // Lateness past the redos is judged: it may be the load's own doing (on loopback the load
    // generator's CPU runs the server's TCP input too, and an overloaded server makes it late).
    const bool noisy_window = Noisy(window), redos_left = noisy + late < limits_.noisy_redos;
    if (window.ok && limits_.noisy_redos > 0 && (noisy_window || (redos_left && Late(window, slo_)))) {
      ++(noisy_window ? noisy : late);
      if (noisy_window) worst = std::max(worst, window.detail["noise"].value("worst_cpu_fraction", 0.0));
      set_aside = std::move(window);
      continue;
    }
    windows.push_back(std::move(window));
    if (!windows.back().ok) break;
  }
  if (rate == 0 && windows.empty() && set_aside.ok) {  // the probe's last window serves for the scale
    --(Noisy(set_aside) ? noisy : late);
    windows.push_back(std::move(set_aside));
  }
  noisy_windows_ += noisy;
  late_windows_ += late;
  nlohmann::json record = {
      {"offered", rate}, {"windows", windows.size()}, {"noisy_windows", noisy}, {"late_windows", late}};
  if (check) record["check"] = true;
  Step out;
  const bool failed = !windows.empty() && !windows.back().ok;
  if (!failed && !stopped() && rate > 0 && windows.size() < wanted / 2 + 1) {
    out.unjudged = WhyUnjudged(rate, noisy, late, windows.size(), worst);
    record["verdict"] = "not judged: " + out.unjudged;
  } else if (windows.empty() || failed) {
    out.rep = windows.empty() ? harness::Repetition::Failed("interrupted") : windows.back();
    out.misses = out.rep.error;
    record["verdict"] = out.misses;
  } else {
    out = Judge(rate, windows, record);
  }
  steps_.push_back(std::move(record));
  if (rate > 0 && out.rep.ok) {
    outcomes_[rate] = out.misses.empty();
    if (out.misses.empty()) met_reps_[rate] = out.rep;
  }
  return out;
}

// The step's figures are those of the window with the median of the SLO's first percentile; it is
// judged on the medians of all its windows and the worst of their failures.
CapacitySearch::Step CapacitySearch::Judge(double rate, const std::vector<harness::Repetition>& windows,
                                           nlohmann::json& record) {
  const std::string first = slo_.front().metric();
  std::vector<size_t> order(windows.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return windows[x].metrics[first].get<double>() < windows[y].metrics[first].get<double>();
  });
  Step out;
  out.rep = windows[order[order.size() / 2]];
  harness::Repetition judged = out.rep;
  for (const std::string key : {"achieved_rate", "scheduled_rate", "client_cpu_utilization"}) {
    if (judged.metrics.contains(key)) judged.metrics[key] = MedianOf(windows, key);
  }
  for (const SloBound& b : slo_) judged.metrics[b.metric()] = MedianOf(windows, b.metric());
  for (const std::string key : {"errors", "lost", "starved_connections"}) {
    if (judged.metrics.contains(key)) judged.metrics[key] = WorstOf(windows, key);
  }
  const double window_s = judged.metrics.value("msgs_per_second", 0.0) > 0
                              ? static_cast<double>(judged.iterations) / judged.metrics["msgs_per_second"].get<double>()
                              : 0;
  out.misses = rate > 0 ? MissReason(judged.metrics, rate, window_s, slo_) : "";
  if (rate > 0 && out.misses.empty() && judged.metrics.contains("achieved_rate")) {
    // Kept up on the median of its windows: the step's figure, not the one window's (which may have
    // fallen a little behind alone, and then says so in a warning the step does not stand by).
    out.rep.metrics["achieved_rate"] = judged.metrics["achieved_rate"];
    if (judged.metrics.contains("scheduled_rate")) out.rep.metrics["scheduled_rate"] = judged.metrics["scheduled_rate"];
    out.rep.detail["behind_schedule"] = false;
    auto& w = out.rep.warnings;
    w.erase(std::remove_if(w.begin(), w.end(), [](const std::string& x) { return x.rfind("behind schedule", 0) == 0; }),
            w.end());
  }
  const double busy = MedianOf(windows, "client_cpu_utilization");
  out.client_bound = rate > 0 && busy > limits_.client_busy;
  out.rep.detail["client_bound"] = out.client_bound;
  if (out.client_bound) {
    client_bound_ = fmt::format("client-bound: the load generator wanted {:.0f}% of its CPU(s) (median of {} windows)",
                                busy * 100, windows.size());
  }
  for (const char* key : kRecorded) {
    if (out.rep.metrics.contains(key)) record[key] = MedianOf(windows, key);
  }
  nlohmann::json per_window = nlohmann::json::array();
  for (const auto& w : windows) per_window.push_back(w.metrics[first]);
  record[first + "_windows"] = std::move(per_window);
  record["client_bound"] = out.client_bound;
  record["verdict"] = out.misses.empty() ? "met" : out.misses;
  return out;
}

// Up by x1.5 until a miss; down by /2 while nothing met (not below a hundredth of the closed loop's
// rate: nothing in a useful range meets it, as with a pool that starves connections); then bisect.
double CapacitySearch::NextRate(double rate, double scale) const {
  if (missed_ == 0) return rate * 1.5;
  if (met_ == 0) return rate < scale / 100 || rate < 2 ? 0 : rate / 2;
  if ((missed_ - met_) / missed_ <= limits_.resolution) return 0;
  return (met_ + missed_) / 2;
}

// Steps from `rate` until the search narrows to its resolution, misses everything, or the client is
// the limit.
void CapacitySearch::Search(double rate, double scale) {
  while (static_cast<int>(steps_.size()) < limits_.max_steps + extra_steps_ && !stopped()) {
    Step s = Measure(rate, false);
    if (!s.unjudged.empty()) {
      unjudged_ = std::move(s.unjudged);  // what the server can do there, the host would not let it show
      return;
    }
    if (s.misses.empty() && rate > met_) {
      met_ = rate;
      at_capacity_ = std::move(s.rep);
    } else if (!s.misses.empty()) {
      missed_ = missed_ == 0 ? rate : std::min(missed_, rate);
      if (first_miss_.empty()) first_miss_ = s.misses;
    }
    if (s.client_bound) return;  // what the server could do beyond this, the load generator cannot tell
    const double next = NextRate(rate, scale);
    if (next == 0) return;
    rate = next;
  }
}

// Whether the capacity passes its own check: at it the SLO is met again, at kCheckAbove times it
// the SLO is missed. Where it does not, the search's bounds move to what the check found and the
// search goes on from there: above a rate past the capacity that met, to the lowest that missed
// above it; below a capacity that missed, by a margin. A rate that met once and missed the next
// time lies where the SLO's edge is blurred by what varies between windows (near its knee a
// queue's p99 moves by more than the resolution): the rates that met within the margin below it
// are set aside, the search bisects below the margin, and the margin starts at the resolution and
// doubles at each such miss, so that the capacity lands where the SLO holds, not on the blur.
bool CapacitySearch::Holds() {
  const double capacity = met_;
  extra_steps_ += 2;
  Step at = Measure(capacity, true);
  if (!at.unjudged.empty()) unjudged_ = std::move(at.unjudged);
  if (stopped() || !unjudged_.empty() || !at.rep.ok) return true;  // nothing more to learn: Result says why
  if (!at.misses.empty()) {
    margin_ = margin_ == 0 ? limits_.resolution : 2 * margin_;
    missed_ = capacity * (1 - margin_);
    met_ = 0;
    for (const auto& [r, met] : outcomes_) {
      if (met && r < missed_) met_ = r;
    }
    at_capacity_ = met_ > 0 ? met_reps_[met_] : harness::Repetition{};
    return false;
  }
  at_capacity_ = std::move(at.rep);
  const double above = capacity * kCheckAbove;
  Step over = Measure(above, true);
  if (!over.unjudged.empty()) unjudged_ = std::move(over.unjudged);  // met again at it; above it, unseen
  if (stopped() || !unjudged_.empty() || !over.rep.ok || !over.misses.empty()) return true;
  met_ = above;
  at_capacity_ = std::move(over.rep);
  missed_ = 0;
  for (const auto& [r, met] : outcomes_) {
    if (!met && r > above && (missed_ == 0 || r < missed_)) missed_ = r;
  }
  return false;
}

harness::Repetition CapacitySearch::Run() {
  const Step probe = Measure(0, false);
  if (!probe.rep.ok) return harness::Repetition::Failed("closed-loop probe: " + probe.rep.error);
  const double scale = probe.rep.metrics["msgs_per_second"].get<double>();
  double rate = std::max(1.0, scale / 8);
  for (int round = 0;; ++round) {
    Search(rate, scale);
    if (stopped() || !client_bound_.empty() || !unjudged_.empty() || met_ == 0 || missed_ == 0) break;
    if (round == limits_.checks) {
      unchecked_ = true;
      break;
    }
    if (Holds()) break;
    extra_steps_ += limits_.max_steps / 2;  // the search resumes from what the check found
    rate = missed_ == 0 ? met_ * 1.5 : met_ == 0 ? missed_ / 2 : (met_ + missed_) / 2;
  }
  return Result(rate);
}

harness::Repetition CapacitySearch::Result(double last_rate) {
  if (stopped()) return harness::Repetition::Failed("interrupted");
  if (met_ == 0) {
    harness::Repetition failed = harness::Repetition::Failed(
        !unjudged_.empty() ? fmt::format("no capacity: the search stopped where {}, before any rate met {}", unjudged_,
                                         FormatSlo(slo_))
                           : "no rate met " + FormatSlo(slo_) + ": at " + fmt::format("{:.0f}", last_rate) +
                                 " msgs/s, " + (first_miss_.empty() ? client_bound_ : first_miss_));
    failed.detail["steps"] = std::move(steps_);                                 // what failed it, step by step
    if (!unjudged_.empty()) failed.spoiled = "stopped by noise: " + unjudged_;  // the runner measures it again
    return failed;
  }
  harness::Repetition rep = std::move(at_capacity_);
  rep.metrics["capacity_msgs_per_second"] = met_;
  rep.detail["steps"] = std::move(steps_);
  rep.detail["noisy_windows"] = noisy_windows_;
  rep.detail["late_windows"] = late_windows_;
  rep.detail.erase("noise");  // the window's: the runner puts the whole search's in its place
  rep.spoiled.clear();        // the search judged its windows' lateness itself, against the SLO (Late)
  rep.detail["capacity_limit"] = !unjudged_.empty()       ? "noise"
                                 : !client_bound_.empty() ? "client"
                                 : missed_ > 0            ? "slo"
                                                          : "steps";
  rep.warnings.erase(std::remove_if(rep.warnings.begin(), rep.warnings.end(),
                                    [](const std::string& w) { return w.rfind("client-bound", 0) == 0; }),
                     rep.warnings.end());
  if (!unjudged_.empty()) {
    // Left out of the medians and measured again by the runner, as a noisy repetition is.
    rep.spoiled =
        fmt::format("stopped by noise: {}; capacity at least {:.0f} msgs/s, not narrowed or checked", unjudged_, met_);
    rep.warnings.push_back(rep.spoiled);
  } else if (!client_bound_.empty()) {
    rep.warnings.push_back(fmt::format("client-bound: capacity at least {:.0f} msgs/s; the search stopped where {}",
                                       met_, client_bound_.substr(client_bound_.find(':') + 2)));
    rep.detail["client_bound"] = true;
  } else if (missed_ == 0) {
    rep.warnings.push_back(
        fmt::format("steps: the search ran out of windows still meeting the SLO at {:.0f} msgs/s", met_));
  } else if (unchecked_) {
    rep.warnings.push_back(
        fmt::format("unchecked: after {} checks the capacity still moved; {:.0f} msgs/s is the "
                    "last the search found, not confirmed",
                    limits_.checks, met_));
  }
  rep.detail["capacity_checked"] = unjudged_.empty() && client_bound_.empty() && missed_ > 0 && !unchecked_;
  return rep;
}

}  // namespace echo
