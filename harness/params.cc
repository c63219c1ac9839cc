#include "harness/params.h"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace harness {
namespace {

std::invalid_argument Bad(std::string_view what, std::string_view text) {
  return std::invalid_argument(std::string(what) + ": '" + std::string(text) + "'");
}

}  // namespace

Duration ParseDuration(std::string_view text, Duration min) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || text.empty()) throw Bad("not a duration (try 2s, 500ms)", text);
  const std::string_view unit(end, text.data() + text.size() - end);
  double ns_per_unit = 0;
  if (unit.empty() || unit == "s")
    ns_per_unit = 1e9;
  else if (unit == "ms")
    ns_per_unit = 1e6;
  else if (unit == "us")
    ns_per_unit = 1e3;
  else if (unit == "ns")
    ns_per_unit = 1;
  else if (unit == "m" || unit == "min")
    ns_per_unit = 60e9;
  else if (unit == "h")
    ns_per_unit = 3600e9;
  else
    throw Bad("unknown duration unit (use ns, us, ms, s, m, h)", text);
  const double ns = value * ns_per_unit;
  constexpr double kMax = 86400e9;
  if (!(ns >= static_cast<double>(min.count())) || ns > kMax) {
    throw Bad("must be between " + FormatDuration(min) + " and 24h", text);
  }
  return Duration(static_cast<int64_t>(std::llround(ns)));
}

// Exact: 15 significant digits hold every whole number of nanoseconds up to 24 h, so a duration
// written back (an SLO's bound in a run's name) is the one that was given, never rounded.
std::string FormatDuration(Duration d) {
  const double ns = static_cast<double>(d.count());
  char buf[48];
  if (ns == 0) return "0s";
  if (ns >= 1e9)
    std::snprintf(buf, sizeof buf, "%.15gs", ns / 1e9);
  else if (ns >= 1e6)
    std::snprintf(buf, sizeof buf, "%.15gms", ns / 1e6);
  else if (ns >= 1e3)
    std::snprintf(buf, sizeof buf, "%.15gus", ns / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.15gns", ns);
  return buf;
}

uint64_t ParseCount(std::string_view text, uint64_t min, uint64_t max) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || text.empty()) throw Bad("not a positive whole number", text);
  const std::string_view suffix(end, text.data() + text.size() - end);
  int shift = 0;
  if (suffix == "K" || suffix == "k" || suffix == "KiB")
    shift = 10;
  else if (suffix == "M" || suffix == "MiB")
    shift = 20;
  else if (suffix == "G" || suffix == "GiB")
    shift = 30;
  else if (!suffix.empty())
    throw Bad("not a positive whole number", text);
  if (shift && value > (std::numeric_limits<uint64_t>::max() >> shift)) throw Bad("too large", text);
  value <<= shift;
  if (value < min || value > max) {
    throw Bad("must be between " + std::to_string(min) + " and " + std::to_string(max), text);
  }
  return value;
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma - start);
    if (item.empty()) throw Bad("empty item in list", text);
    items.emplace_back(item);
    if (comma == std::string_view::npos) return items;
    start = comma + 1;
  }
}

std::string Endpoint::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Endpoint ParseEndpoint(std::string_view text, bool allow_zero) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) throw Bad("expected HOST:PORT", text);
  std::string host(text.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned char addr[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), addr) != 1 && inet_pton(AF_INET6, host.c_str(), addr) != 1) {
    throw Bad("expected a numeric IPv4 or IPv6 address in HOST:PORT", text);
  }
  const uint64_t port = ParseCount(text.substr(colon + 1), allow_zero ? 0 : 1, 65535);
  return Endpoint{std::move(host), static_cast<uint16_t>(port)};
}

// "5%" or "0.05": a share of the CPUs under test, above 0 and below 1.
double ParseShare(const std::string& text) {
  const bool percent = !text.empty() && text.back() == '%';
  const std::string number = percent ? text.substr(0, text.size() - 1) : text;
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end) / (percent ? 100 : 1);
  if (number.empty() || end != number.c_str() + number.size() || !(value > 0 && value < 1)) {
    throw std::invalid_argument("'" + text + "' is not a share between 0% and 100% (e.g. 5%)");
  }
  return value;
}

}  // namespace harness
