// The capacity search (`run --capacity`): the highest offered rate (open loop, latency from the
// scheduled send) at which a server keeps up (achieved within 1% of offered), meets every bound of
// the SLO, and loses, breaks and starves nothing.
//
// A closed-loop window first gives the scale; then rates go up by x1.5 from an eighth of it (or
// down by /2, to a hundredth of it at most) until one misses, and bisection between the last that
// met and the first that missed narrows it to the resolution, in at most `max_steps` steps. Each
// step is `windows_per_step` windows judged on their medians (the achieved rate, each percentile of
// the SLO, the load generator's utilisation) and the worst of their errors, losses and starved
// connections, so that one slow window neither fails nor passes a rate alone; a window whose CPUs
// were taken by others (its detail's "noise"), or in which the load generator itself sent late (its
// send_lateness_p99_us over kLateShare of the SLO's tightest bound) or off its schedule (the gaps
// between its sends strayed from the schedule's: ArrivalsStrayed), is measured again rather than
// judged; past those redos a late window is judged (an overloaded server makes the load generator
// late too), a noisy one never: a step left with fewer windows than most of `windows_per_step`
// ends the search, which then reports what it had found as a lower bound ("stopped by noise", a
// spoiled repetition the runner measures again) or, with nothing met yet, fails. A step in which
// the load generator was over `client_busy` ends the search too: what it found is a lower bound
// ("client-bound"), not a capacity. A capacity C is reported only once it passes
// its own check: the SLO met at C again and missed at kCheckAbove x C; where it does not, the search
// goes on from what the check found, `checks` times at most; below a C that missed on its check, by
// a margin (the resolution, doubled at each such miss): that rate met once and missed once, so the
// SLO's edge is blurred there by more than the resolution.
//
// The search knows nothing of servers or sockets: it is driven through a function that measures
// one window at a rate, so a test can drive it with a fake of known capacity in milliseconds.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/scenario.h"
#include "scenarios/echo/slo.h"

namespace echo {

// The figures of one window at `rate` msgs/s offered (0: the closed loop), as a repetition (failed
// when the window cannot stand). May throw std::runtime_error (the server died): the search ends.
using MeasureWindow = std::function<harness::Repetition(double rate)>;

struct CapacityLimits {
  int max_steps = 14;  // steps, the closed-loop probe among them (checks, and each search resumed after one, get more)
  int windows_per_step = 3;
  double resolution = 0.02;  // bisection ends when (missed - met) / missed is this or less
  double client_busy = 0.9;  // the median client_cpu_utilization that ends the search
  // Windows per step measured again, not judged, because their detail's noise says "noisy"
  // (harness/noise.h) or the load generator sent late; past these a late window is judged, and a
  // step without enough windows that are not noisy is not judged. 0: noise is recorded, never redone, and noisy windows
  // are judged.
  int noisy_redos = 3;
  // Times a capacity is checked (met again at it, missed at kCheckAbove times it) and the search
  // resumed from what a failed check found; past these it is reported unchecked.
  int checks = 3;
};

// A capacity C holds when the SLO is met at C and missed at this times C.
inline constexpr double kCheckAbove = 1.3;

class CapacitySearch {
 public:
  CapacitySearch(std::vector<SloBound> slo, MeasureWindow measure, CapacityLimits limits = {},
                 const std::atomic<bool>* stop = nullptr);

  // Searches; returns the repetition of the step at the capacity with `capacity_msgs_per_second`,
  // and in its detail every step (`steps`, each with its `noisy_windows`), what ended the search
  // (`capacity_limit`: slo, client, noise or steps) and the windows redone for noise (`noisy_windows`);
  // failed when no rate met the SLO or the search was stopped.
  harness::Repetition Run();

 private:
  struct Step {
    harness::Repetition rep;  // the window with the median of the SLO's first percentile
    std::string misses;       // why it misses the objective, or ""
    bool client_bound = false;
    std::string unjudged;  // too few clean windows to judge the step: how many were not, and why
  };

  Step Measure(double rate, bool check);
  void Search(double rate, double scale);
  bool Holds();
  Step Judge(double rate, const std::vector<harness::Repetition>& windows, nlohmann::json& record);
  double NextRate(double rate, double scale) const;  // 0: the search is over
  harness::Repetition Result(double last_rate);
  bool stopped() const { return stop_ != nullptr && stop_->load(); }

  const std::vector<SloBound> slo_;
  const MeasureWindow measure_;
  const CapacityLimits limits_;
  const std::atomic<bool>* const stop_;
  nlohmann::json steps_ = nlohmann::json::array();
  std::string client_bound_;         // the warning of the step that ended the search, if the client did
  std::string unjudged_;             // the step that ended the search unjudged, if noise did (Step::unjudged)
  double met_ = 0;                   // the highest rate that met the objective
  double missed_ = 0;                // the lowest that missed it (or, after a check that missed, its margin below that)
  double margin_ = 0;                // below a check that missed: the resolution, doubled at each (Holds)
  int noisy_windows_ = 0;            // windows measured again because others took their CPUs
  int late_windows_ = 0;             // ... because the load generator sent late (Late in the .cc)
  int extra_steps_ = 0;              // beyond max_steps: the checks' steps, and the searches resumed after them
  bool unchecked_ = false;           // the checks ran out with the capacity still moving
  std::map<double, bool> outcomes_;  // each open-loop rate measured: met (latest)?
  std::map<double, harness::Repetition> met_reps_;  // the step's figures of each rate that met
  harness::Repetition at_capacity_;
  std::string first_miss_;
};

}  // namespace echo
