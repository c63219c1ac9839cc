#include "scenarios/echo/slo.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "harness/text.h"

namespace echo {

double SloBound::bound_us() const { return std::chrono::duration<double, std::micro>(bound).count(); }

std::vector<SloBound> ParseSlo(const std::string& text) {
  std::vector<SloBound> slo;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t plus = std::min(text.find('+', at), text.size());
    const std::string one = text.substr(at, plus - at);
    const size_t colon = one.find(':');
    const std::string percentile = one.substr(0, colon);
    if (colon == std::string::npos ||
        (percentile != "p50" && percentile != "p90" && percentile != "p99" && percentile != "p999")) {
      throw std::invalid_argument("an SLO is PERCENTILE:BOUND (p50, p90, p99 or p999), e.g. p99:2ms, not '" + one +
                                  "'");
    }
    slo.push_back({percentile, harness::ParseDuration(one.substr(colon + 1), std::chrono::microseconds(1))});
    at = plus + 1;
  }
  return slo;
}

std::string FormatSlo(const std::vector<SloBound>& slo) {
  std::string out;
  for (const auto& b : slo) out += (out.empty() ? "" : "+") + b.percentile + ":" + harness::FormatDuration(b.bound);
  return out;
}

bool KeptUp(double achieved, double offered, double window_s) {
  const double one_message = window_s > 0 ? 1 / window_s : 0;
  return achieved >= 0.99 * offered - one_message;
}

bool ArrivalsStrayed(double sent_cv, double due_cv) {
  return std::abs(sent_cv * sent_cv - due_cv * due_cv) > kArrivalScvBand;
}

std::string MissReason(const nlohmann::json& m, double offered, double window_s, const std::vector<SloBound>& slo) {
  const double due = m.value("scheduled_rate", offered);
  if (!KeptUp(m["achieved_rate"].get<double>(), due, window_s)) {
    return fmt::format("achieved {:.0f} of {:.0f} msgs/s{}", m["achieved_rate"].get<double>(), due,
                       m.contains("scheduled_rate") ? " scheduled" : "");
  }
  for (const SloBound& b : slo) {
    if (m[b.metric()].get<double>() > b.bound_us()) {
      return fmt::format("{} {:.0f} us > {:.0f} us", b.percentile, m[b.metric()].get<double>(), b.bound_us());
    }
  }
  for (const char* key : {"errors", "lost", "starved_connections"}) {
    if (m.value(key, 0.0) > 0) return fmt::format("{} {}", key, harness::JsonText(m[key]));
  }
  return "";
}

}  // namespace echo
