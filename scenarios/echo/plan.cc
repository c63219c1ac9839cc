#include "scenarios/echo/plan.h"

#include <sys/resource.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "harness/placement.h"
#include "harness/process_usage.h"
#include "scenarios/echo/arrivals.h"
#include "scenarios/echo/load_generator.h"
#include "scenarios/echo/server.h"
#include "scenarios/echo/slo.h"
#include "scenarios/echo/tracing.h"
#include "scenarios/echo/work.h"

namespace echo {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kMaxConnections = 100000;
constexpr uint64_t kMaxSize = 64 << 20;

// A UDP run needs a model with a UDP server and a size that fits a datagram with its header.
// False: skip this run (a model without UDP that the user did not name); throws on a bad request.
bool CheckTransport(const ModelEntry* m, const nlohmann::json& p, bool models_named) {
  const auto size = p["size"].get<uint64_t>();
  const ReplyMode reply = ReplyMode::Parse(p.value("reply", "upper"));
  if (p.contains("work")) {
    if (p.value("transport", "tcp") == "udp") throw std::invalid_argument("--work: TCP only, for now");
    if (size < WorkHeader::kSize || size + reply.headroom() > kBufferSize) {
      throw std::invalid_argument(
          fmt::format("--size: a request with --work is read whole, its {}-byte header "
                      "first: {} to {} bytes, not {}",
                      WorkHeader::kSize, WorkHeader::kSize, kBufferSize - reply.headroom(), size));
    }
  }
  if (p.value("transport", "tcp") != "udp") {
    // A prefix is added per read: a message must fit one read of a server's buffer with it.
    if (reply.headroom() > 0 && size + reply.headroom() > kBufferSize) {
      throw std::invalid_argument(
          fmt::format("--size: a prefixed TCP reply is made per read, so a message and its "
                      "prefix fit one {}-byte buffer: at most {} bytes, not {}",
                      kBufferSize, kBufferSize - reply.headroom(), size));
    }
    return true;
  }
  if (m && !m->make_udp) {
    if (!models_named) return false;
    throw std::invalid_argument("model '" + m->name + "' has no UDP server (see: list)");
  }
  if (size < kMinDatagram || size + reply.headroom() > kMaxDatagram) {
    throw std::invalid_argument(
        fmt::format("--size: a UDP message is {} to {} bytes (its reply fits a datagram), not {}", kMinDatagram,
                    kMaxDatagram - reply.headroom(), size));
  }
  return true;
}

// --arrivals shapes an open loop's schedule, --depth a closed loop's: each refused where there is
// nothing for it to shape. A prefixed reply is made per read, one message in flight.
void CheckLoop(const nlohmann::json& p) {
  const bool open = p.contains("rate") || p.contains("capacity");
  if (p.contains("arrivals") && !open) throw std::invalid_argument("--arrivals: an open loop's (give --rate or --capacity)");
  if (p.value("depth", 1) > 1) {
    if (open) throw std::invalid_argument("--depth: a closed loop's (not with --rate or --capacity)");
    if (ReplyMode::Parse(p.value("reply", "upper")).headroom() > 0) {
      throw std::invalid_argument("--depth: a prefixed --reply is made per read, one message in flight at a time");
    }
  }
}

// The variants of --variant that model `m` has; throws for a name no chosen model has.
std::vector<std::string> VariantsFor(const ModelEntry& m, const std::string& given,
                                     const std::vector<const ModelEntry*>& chosen) {
  std::vector<std::string> mine;
  for (const std::string& name : harness::SplitList(given)) {
    const bool known = std::any_of(chosen.begin(), chosen.end(),
                                   [&](const ModelEntry* other) { return other && FindVariant(*other, name); });
    if (!known) {
      std::string names;
      for (const ModelEntry* other : chosen) {
        for (const Variant& v : other ? other->variants : std::vector<Variant>{}) {
          names += (names.empty() ? "" : ", ") + other->name + ":" + v.name;
        }
      }
      throw std::invalid_argument("--variant: no chosen model has a variant '" + name + "' (" +
                                  (names.empty() ? "none has variants" : "there are " + names) + ")");
    }
    if (FindVariant(m, name)) mine.push_back(name);
  }
  return mine;
}

// Each connection is a file descriptor in the load generator and one in the server, both under
// this process's open-files limit (raised to its hard limit at start); a run that cannot open them
// is refused before any work.
void CheckFileLimit(uint64_t connections) {
  constexpr uint64_t kSpare = 64;  // listening socket, epoll, pipes, /proc reads
  rlimit limit{};
  if (connections == 0 || getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  if (connections + kSpare > limit.rlim_cur) {
    throw std::invalid_argument(
        fmt::format("--connections: {} connections need {} open files, and the limit here "
                    "is {} (ulimit -n)",
                    connections, connections + kSpare, limit.rlim_cur));
  }
}

// `load`: a --target nothing answers on, over any transport the runs use, and a --server-pid that
// is not the server at the target are bad input, found before any work.
void CheckTarget(const std::vector<harness::RunSpec>& runs, const harness::Options& options) {
  const harness::Endpoint target = harness::ParseEndpoint(*options.target, false);
  std::set<bool> transports;  // udp?
  for (const auto& run : runs) transports.insert(run.params.value("transport", "tcp") == "udp");
  for (const bool udp : transports) {
    if (std::string why = udp ? ProbeUdp(target, 3s) : ProbeTcp(target, 3s); !why.empty()) {
      throw std::invalid_argument("--target: " + why);
    }
    if (options.server_pid) {
      if (std::string why = harness::CheckServesPort(*options.server_pid, target.port, udp); !why.empty()) {
        throw std::invalid_argument("--server-pid: " + why);
      }
    }
  }
}

// The models of the runs: every one, those named, or (`load`) the one external server, nullptr.
std::vector<const ModelEntry*> ChosenModels(const harness::Options& options) {
  std::vector<const ModelEntry*> chosen;
  if (options.target) {
    chosen.push_back(nullptr);
  } else if (options.models.empty()) {
    for (const auto& m : Models()) chosen.push_back(&m);
  } else {
    for (const auto& name : options.models) {
      const ModelEntry* m = FindModel(name);
      if (m == nullptr) throw std::invalid_argument("unknown model '" + name + "' for echo (see: list)");
      chosen.push_back(m);
    }
  }
  return chosen;
}

// --capacity (bare or with its SLO) or --slo: a capacity search per run, its SLO in the run's
// params ("capacity"); --slo is then folded into it.
harness::Options WithSearch(const harness::Options& options) {
  harness::Options scoped = options;
  if (options.params.count("rate")) throw std::invalid_argument("--rate: not with --capacity, which chooses the rates");
  if (options.params.count("slo")) {
    for (const auto& one : harness::SplitList(options.params.at("slo"))) ParseParam("slo", one);  // names its flag
    if (options.params.count("capacity") && !options.params.at("capacity").empty()) {
      throw std::invalid_argument("--slo: --capacity=" + options.params.at("capacity") +
                                  " names the SLO already; give it once, in one of them");
    }
  }
  std::string& slo = scoped.params["capacity"];
  if (slo.empty()) slo = options.params.count("slo") ? options.params.at("slo") : kDefaultSlo;
  scoped.params.erase("slo");
  return scoped;
}

// The options of model `m`'s runs (its default workers, its variants of --variant) and the
// parameters they use.
harness::Options ForModel(const ModelEntry* m, const harness::Options& scoped,
                          const std::vector<const ModelEntry*>& chosen, std::vector<std::string>& used) {
  used = {"arrivals", "capacity", "client-threads", "connections", "depth",
          "rate",     "reply",    "size",           "start",       "transport", "work"};
  // The arrival process's seed: an open loop's (pipeline has a --seed of its own, so one given to
  // both is refused only when no scenario takes it).
  if (scoped.params.count("rate") || scoped.params.count("capacity")) used.push_back("seed");
  harness::Options with_defaults = scoped;
  if (m && m->workers.default_list) {
    used.push_back("workers");
    with_defaults.params.try_emplace("workers", m->workers.default_list);
  }
  if (m && scoped.params.count("variant")) {
    const std::vector<std::string> mine = VariantsFor(*m, scoped.params.at("variant"), chosen);
    if (!mine.empty()) {
      used.push_back("variant");
      std::string list;
      for (const auto& v : mine) list += (list.empty() ? "" : ",") + v;
      with_defaults.params["variant"] = list;
    }
  }
  return with_defaults;
}

// The runs of model `m` (nullptr: `load`'s external server) under `scoped`, into `runs`.
void PlanModel(const harness::Scenario& echo, const ModelEntry* m, const harness::Options& scoped,
               const harness::Options& options, const std::vector<const ModelEntry*>& chosen, bool search,
               std::vector<harness::RunSpec>& runs, uint64_t& most_connections) {
  std::vector<std::string> used;
  const harness::Options mine = ForModel(m, scoped, chosen, used);
  for (auto& p : harness::ParamProduct(echo.params(), mine, used, &ParseParam)) {
    if (!CheckTransport(m, p, !options.models.empty())) continue;
    CheckLoop(p);
    if (p.value("variant", "") == "blocking" && !p.contains("work")) {
      throw std::invalid_argument("--variant: blocking blocks the loop in a request's wait: give --work with a wait");
    }
    harness::RunSpec run = harness::NewRun(echo, m ? m->name : options.target_name, std::move(p), scoped);
    if (options.target) run.params["target"] = *options.target;  // not in its name: loads of one run merge
    PlanTracing(options, run);  // how it is measured, not what: not in its name either
    if (search) {
      // A search's windows are a second each unless --duration says (as long as the windows of a
      // plain run that checks its capacity: near the knee a queue that has not grown in half a
      // second has in one); and it is itself dozens of windows: one repetition unless asked for more.
      run.duration = options.duration.value_or(harness::Duration(1s));
      run.repetitions = options.repetitions.value_or(1);
      if (options.params.count("slo")) run.consumed.push_back("slo");
    }
    most_connections = std::max(most_connections, run.params["connections"].get<uint64_t>());
    runs.push_back(std::move(run));
  }
}

// The quick and full profiles end with requests that cost something (--work): one CPU-bound and one
// wait-bound point at 100 connections, every model, when the profile is asked for alone (no
// parameter given, no --target). Quick's windows are 300 ms, so that the default suite stays
// within 4 minutes.
struct WorkSection {
  std::map<std::string, std::string> params;
  std::optional<harness::Duration> duration;
};
const std::map<std::string, WorkSection> kWorkSection = {
    {"quick", {{{"connections", "100"}, {"work", "cpu:fixed:50us,wait:fixed:1ms"}}, harness::Duration(300ms)}},
    {"full", {{{"connections", "100"}, {"work", "cpu:fixed:50us,wait:fixed:1ms"}}, std::nullopt}},
};

}  // namespace

nlohmann::json ParseParam(const std::string& name, const std::string& value) {
  try {
    if (name == "connections") return harness::ParseCount(value, 1, kMaxConnections);
    if (name == "size") return harness::ParseCount(value, 1, kMaxSize);
    if (name == "workers") return harness::ParseCount(value, 1, 20000);
    if (name == "rate") return harness::ParseCount(value, 1, 10'000'000);
    if (name == "client-threads") return harness::ParseCount(value, 1, 1024);
    if (name == "depth") return harness::ParseCount(value, 1, 1024);
    if (name == "seed") return harness::ParseCount(value, 1, uint64_t{1} << 62);
    if (name == "arrivals") return ToString(ParseArrivals(value));
    if (name == "start") {
      if (value != "barrier" && value != "ramp") throw std::invalid_argument("must be barrier or ramp: '" + value + "'");
      return value;
    }
    if (name == "capacity" || name == "slo") return FormatSlo(ParseSlo(value));
    if (name == "transport") {
      if (value != "tcp" && value != "udp") throw std::invalid_argument("must be tcp or udp: '" + value + "'");
      return value;
    }
    if (name == "reply") return ReplyMode::Parse(value).ToString();
    if (name == "work") return WorkSpec::Parse(value).ToString();
    if (name == "variant") {
      if (value.empty()) throw std::invalid_argument("empty variant name");
      return value;  // checked against each model's variants in Plan
    }
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--" + name + ": " + e.what());
  }
  throw std::invalid_argument("echo has no parameter --" + name);
}

std::vector<harness::RunSpec> PlanRuns(const harness::Scenario& echo, const harness::Options& options) {
  const std::vector<const ModelEntry*> chosen = ChosenModels(options);
  const bool search = options.params.count("capacity") || options.params.count("slo");
  std::vector<harness::Options> parts = {search ? WithSearch(options) : options};
  if (const auto section = kWorkSection.find(options.profile);
      section != kWorkSection.end() && options.params.empty() && !options.target) {
    harness::Options work = options;
    work.params = section->second.params;
    if (!work.duration) work.duration = section->second.duration;
    parts.push_back(std::move(work));
  }
  std::vector<harness::RunSpec> runs;
  uint64_t most_connections = 0;
  for (const harness::Options& scoped : parts) {
    for (const ModelEntry* m : chosen) PlanModel(echo, m, scoped, options, chosen, search, runs, most_connections);
  }
  CheckFileLimit(most_connections);
  if (options.target) CheckTarget(runs, options);
  return runs;
}

}  // namespace echo
