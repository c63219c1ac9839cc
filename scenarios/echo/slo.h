// A service-level objective for the capacity search: bounds on percentiles of the round trip.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/params.h"

namespace echo {

// One bound: a percentile of the round trip (p50, p90, p99, p999) at most `bound`.
struct SloBound {
  std::string percentile;  // "p99"
  harness::Duration bound;
  std::string metric() const { return percentile + "_us"; }  // the entry's key for it
  double bound_us() const;
};

// "p99:2ms", or several joined by '+': "p99:2ms+p50:500us". Throws std::invalid_argument.
std::vector<SloBound> ParseSlo(const std::string& text);
// The canonical text of an SLO, exact: what ParseSlo reads back to the same bounds.
std::string FormatSlo(const std::vector<SloBound>& slo);

// An open loop whose sends left later than this share of a latency at p99 counts its own delay as
// the server's: an entry says so where it is this share of the round trip's p99, and a capacity
// search measures again a window where it is this share of the SLO's tightest bound.
inline constexpr double kLateShare = 0.1;
// The punctuality the open loop holds itself to (us at p99) where the host lets it. Sends as late as
// that bunch up (at 50,000 msgs/s the mean gap is 20 us): the server was offered burstier arrivals
// than asked for, whatever its round trips, and the repetition is spoiled (harness::Repetition::
// spoiled), measured again like a noisy one. Not a share of the round trip: the stall that delays
// the sends delays the replies too, and the long tail it made would excuse it.
inline constexpr double kPunctualUs = 50;
// How far the squared coefficient of variation of the gaps between an open loop's sends may stray
// from its schedule's (the same draws, each gap as due) before the server counts as offered other
// arrivals than asked for. A queue's wait grows with the arrivals' and the service's squared
// coefficients added (Kingman, Allen-Cunneen: (ca^2 + cs^2) / 2), so a tenth is a twentieth of an
// M/M/1 wait. What strays that far is a stall of the load generator (on this VM one of 1.7 ms at
// 50,000 msgs/s, 85 sends held and then sent together, took a Poisson window's CV from 1.00 to 1.13
// while its lateness p99 stayed at 41 us), or a load generator near its own capacity, whose sends
// bunch behind its work (at 100,000 msgs/s, 89-90% busy: CV 1.09-1.21 against the schedule's 1.00).
// Such a repetition is spoiled, measured again.
inline constexpr double kArrivalScvBand = 0.1;
// Whether the gaps of the sends (CV `sent_cv`) strayed from those of their schedule (`due_cv`).
bool ArrivalsStrayed(double sent_cv, double due_cv);

// Whether an open loop at `offered` msgs/s kept up: achieved within 1% of it, or within one message
// over the window (a window counts whole round trips: at 230 msgs/s, 0.4 s holds 92, and one still
// in flight at its end is 1.1%).
bool KeptUp(double achieved, double offered, double window_s);

// Why a window's figures `metrics` (an open loop at `offered` msgs/s over `window_s`) miss the
// objective, or "": it did not keep up (with the rate its window held, `scheduled_rate`, where the
// figures have it: a Poisson window holds `offered` give or take its square root), a bound exceeded,
// or any error, loss or starved connection.
std::string MissReason(const nlohmann::json& metrics, double offered, double window_s,
                       const std::vector<SloBound>& slo);

}  // namespace echo
