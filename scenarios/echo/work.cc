#include "scenarios/echo/work.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "harness/params.h"

namespace echo {
namespace {

constexpr auto kLongest = std::chrono::seconds(1);  // of one request's CPU or wait
constexpr uint64_t kSeed = 0x776f726b;              // "work": one sequence for every model and run

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t from = 0;
  while (true) {
    const size_t at = text.find(sep, from);
    parts.push_back(text.substr(from, at == std::string::npos ? std::string::npos : at - from));
    if (at == std::string::npos) return parts;
    from = at + 1;
  }
}

double Nanoseconds(const std::string& text) {
  if (text.empty()) throw std::invalid_argument("a duration is missing");
  const auto d = harness::ParseDuration(text);
  if (d > kLongest) throw std::invalid_argument("a request's work is at most 1s, not " + text);
  return static_cast<double>(d.count());
}

// "KIND:ARGS" of one part.
Distribution ParseDistribution(const std::vector<std::string>& fields, const std::string& part) {
  Distribution d;
  const std::string& kind = fields.size() > 1 ? fields[1] : "";
  const size_t args = fields.size() - 2;
  if (kind == "fixed" || kind == "exp") {
    if (args != 1) throw std::invalid_argument("'" + part + "': " + kind + " takes one duration");
    d.kind = kind == "fixed" ? Distribution::Kind::kFixed : Distribution::Kind::kExp;
    d.first_ns = Nanoseconds(fields[2]);
  } else if (kind == "bimodal") {
    if (args != 3) {
      throw std::invalid_argument("'" + part + "': bimodal takes P:FIRST:SECOND (FIRST with probability P)");
    }
    char* end = nullptr;
    d.p = std::strtod(fields[2].c_str(), &end);
    if (fields[2].empty() || *end != '\0' || !(d.p > 0 && d.p < 1)) {
      throw std::invalid_argument("'" + part + "': the probability must lie strictly between 0 and 1, not '" +
                                  fields[2] + "'");
    }
    d.kind = Distribution::Kind::kBimodal;
    d.first_ns = Nanoseconds(fields[3]);
    d.second_ns = Nanoseconds(fields[4]);
  } else {
    throw std::invalid_argument("'" + part + "': the distribution is fixed, exp or bimodal, not '" + kind + "'");
  }
  return d;
}

// splitmix64's finaliser over (stream, seq, part): uniform in [0, 1) with 53 bits.
double Uniform(uint64_t stream, uint64_t seq, uint64_t part) {
  uint64_t z = kSeed + stream * 0x9e3779b97f4a7c15ULL + seq * 0xd1b54a32d192ed03ULL + part * 0x8cb92ba72f3d8dd7ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

void PutLe(char* at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t GetLe(const char* at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(at[i])) << (8 * i);
  return v;
}

}  // namespace

double Distribution::At(double u) const {
  switch (kind) {
    case Kind::kNone:
      return 0;
    case Kind::kFixed:
      return first_ns;
    case Kind::kExp:
      return -first_ns * std::log1p(-u);
    case Kind::kBimodal:
      return u < p ? first_ns : second_ns;
  }
  return 0;
}

double Distribution::Mean() const { return kind == Kind::kBimodal ? p * first_ns + (1 - p) * second_ns : first_ns; }

int Distribution::ClassOf(double ns) const {
  if (kind == Kind::kBimodal) return ns == std::min(first_ns, second_ns) ? 0 : 1;
  if (kind == Kind::kExp) return ns < first_ns * std::log(2.0) ? 0 : 1;
  return 0;
}

std::string Distribution::ToString() const {
  const auto d = [](double ns) { return harness::FormatDuration(harness::Duration(std::llround(ns))); };
  switch (kind) {
    case Kind::kNone:
      return "";
    case Kind::kFixed:
      return "fixed:" + d(first_ns);
    case Kind::kExp:
      return "exp:" + d(first_ns);
    case Kind::kBimodal: {
      char p_text[32];
      std::snprintf(p_text, sizeof p_text, "%.15g", p);
      return std::string("bimodal:") + p_text + ":" + d(first_ns) + ":" + d(second_ns);
    }
  }
  return "";
}

WorkSpec WorkSpec::Parse(const std::string& text) {
  if (text.empty()) throw std::invalid_argument("empty: give cpu:KIND:... and/or wait:KIND:...");
  WorkSpec spec;
  for (const std::string& part : Split(text, '+')) {
    const std::vector<std::string> fields = Split(part, ':');
    const std::string& what = fields[0];
    if (what != "cpu" && what != "wait") {
      throw std::invalid_argument("'" + part + "': a part is cpu:KIND:... or wait:KIND:..., not '" + what + "'");
    }
    Distribution& d = what == "cpu" ? spec.cpu_ : spec.wait_;
    if (d.kind != Distribution::Kind::kNone) throw std::invalid_argument("'" + what + "' is given twice");
    d = ParseDistribution(fields, part);
  }
  if (spec.cpu_.variable() && spec.wait_.variable()) {
    throw std::invalid_argument("one part may vary, not both: a request's class would be ambiguous");
  }
  return spec;
}

std::string WorkSpec::ToString() const {
  std::string out;
  if (cpu_.kind != Distribution::Kind::kNone) out = "cpu:" + cpu_.ToString();
  if (wait_.kind != Distribution::Kind::kNone)
    out += (out.empty() ? "" : "+") + std::string("wait:") + wait_.ToString();
  return out;
}

Work WorkSpec::Of(uint64_t stream, uint64_t seq) const {
  const double cpu = cpu_.At(Uniform(stream, seq, 1)), wait = wait_.At(Uniform(stream, seq, 2));
  Work w;
  w.cpu_ns = static_cast<uint64_t>(std::llround(cpu));
  w.wait_ns = static_cast<uint64_t>(std::llround(wait));
  w.cls = cpu_.variable() ? cpu_.ClassOf(static_cast<double>(w.cpu_ns)) : wait_.ClassOf(static_cast<double>(w.wait_ns));
  return w;
}

WorkHeader::Read WorkHeader::From(const char* data, size_t n, size_t max_length, WorkHeader* out) {
  if (std::memcmp(data, "work", std::min<size_t>(n, 4)) != 0) return Read::kBad;
  if (n < kSize) return Read::kNeedMore;
  out->length = static_cast<uint32_t>(GetLe(data + 4, 4));
  out->cpu_ns = GetLe(data + 8, 8);
  out->wait_ns = GetLe(data + 16, 8);
  const uint64_t longest = std::chrono::nanoseconds(kLongest).count();
  if (out->length < kSize || out->length > max_length || out->cpu_ns > longest || out->wait_ns > longest) {
    return Read::kBad;
  }
  return Read::kOk;
}

void WorkHeader::WriteRequest(char* data) const {
  std::memcpy(data, "work", 4);
  PutLe(data + 4, length, 4);
  PutLe(data + 8, cpu_ns, 8);
  PutLe(data + 16, wait_ns, 8);
}

void WorkHeader::WriteReply(char* data) const {
  WriteRequest(data);
  std::memcpy(data, "done", 4);
}

int64_t ThreadCpuNs() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

void BurnCpu(uint64_t ns) {
  if (ns == 0) return;
  int64_t now = ThreadCpuNs();
  const int64_t end = now + static_cast<int64_t>(ns);
  uint64_t x = ns | 1, chunk = 64;
  while (true) {
    // Arithmetic the compiler cannot drop, between looks at the clock. A look is a system call
    // (CLOCK_THREAD_CPUTIME_ID has no vDSO path: 0.3-2 us here), so each chunk is sized from the
    // last one's pace to cover half of what is left: a handful of looks per request.
    for (uint64_t i = 0; i < chunk; ++i) x = (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ULL + 1;
    asm volatile("" : "+r"(x));
    const int64_t before = now;
    now = ThreadCpuNs();
    if (now >= end) return;
    const double per_ns = static_cast<double>(chunk) / static_cast<double>(std::max<int64_t>(1, now - before));
    chunk = std::max<uint64_t>(64, static_cast<uint64_t>(per_ns * static_cast<double>(end - now) / 2));
  }
}

void BlockFor(uint64_t ns) {
  if (ns == 0) return;
  timespec left{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &left, &left) == EINTR) {
  }
}

}  // namespace echo
