// Parsing of the command line's values: durations, sizes, comma-separated lists, endpoints.
// Every parser throws std::invalid_argument with a message fit to show the user as it is.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace harness {

// Now, as seconds since the UNIX epoch (wall clock): what lines up loads on several hosts.
inline double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

using Duration = std::chrono::nanoseconds;

// "2s", "500ms", "1.5s", "250us", "100ns", "1m", "1h"; a bare number is seconds. Must lie within
// [min, 24h]; the error names the range in the units the user wrote.
Duration ParseDuration(std::string_view text, Duration min = Duration(1));
std::string FormatDuration(Duration d);

// A positive integer within [min, max], with an optional binary suffix (K, M, G: 1024-based).
uint64_t ParseCount(std::string_view text, uint64_t min, uint64_t max);
// "5%" or "0.05": a share strictly between 0 and 1; throws std::invalid_argument.
double ParseShare(const std::string& text);

// "a,b,c" -> {"a","b","c"}; empty items are an error.
std::vector<std::string> SplitList(std::string_view text);

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};
// "HOST:PORT" or "[V6]:PORT"; HOST must be a numeric address. Port 0 allowed when allow_zero.
Endpoint ParseEndpoint(std::string_view text, bool allow_zero);

}  // namespace harness
