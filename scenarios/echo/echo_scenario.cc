// The echo scenario: plans runs over models x connections x size (x workers), starts each model's
// server as a child process (`harness serve`), drives it with the load generator, and turns what
// both sides measured into the result names of the README. Knows no model but by its name.
#include <signal.h>
#include <sys/resource.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <set>
#include <stdexcept>

#include "harness/child_process.h"
#include "harness/histogram.h"
#include "harness/noise.h"
#include "harness/placement.h"
#include "harness/process_usage.h"
#include "harness/results.h"
#include "harness/runner.h"
#include "harness/scenario.h"
#include "harness/stats.h"
#include "scenarios/echo/load_generator.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

using harness::Duration;
using namespace std::chrono_literals;

constexpr uint64_t kMaxConnections = 100000;
constexpr const char* kDefaultSlo = "p99:2ms";
constexpr double kClientBusy = 0.9;  // the load generator's CPUs this busy: it, not the server, may be the limit
constexpr uint64_t kMaxSize = 64 << 20;

// One bound of a service-level objective: a percentile of the round trip (p50, p90, p99, p999) at
// most `bound`.
struct SloBound {
  std::string percentile;  // "p99"
  Duration bound;
  std::string metric() const { return percentile + "_us"; }
  double bound_us() const { return std::chrono::duration<double, std::micro>(bound).count(); }
};

// "p99:2ms" or several joined by '+': "p99:2ms+p50:500us".
std::vector<SloBound> ParseSlo(const std::string& text) {
  std::vector<SloBound> slo;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t plus = std::min(text.find('+', at), text.size());
    const std::string one = text.substr(at, plus - at);
    const size_t colon = one.find(':');
    const std::string percentile = one.substr(0, colon);
    if (colon == std::string::npos || (percentile != "p50" && percentile != "p90" && percentile != "p99" &&
                                       percentile != "p999")) {
      throw std::invalid_argument("an SLO is PERCENTILE:BOUND (p50, p90, p99 or p999), e.g. p99:2ms, not '" + one + "'");
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

nlohmann::json ParseParam(const std::string& name, const std::string& value) {
  try {
    if (name == "connections") return harness::ParseCount(value, 1, kMaxConnections);
    if (name == "size") return harness::ParseCount(value, 1, kMaxSize);
    if (name == "workers") return harness::ParseCount(value, 1, 20000);
    if (name == "rate") return harness::ParseCount(value, 1, 10'000'000);
    if (name == "client-threads") return harness::ParseCount(value, 1, 1024);
    if (name == "capacity" || name == "slo") return FormatSlo(ParseSlo(value));
    if (name == "transport") {
      if (value != "tcp" && value != "udp") throw std::invalid_argument("must be tcp or udp: '" + value + "'");
      return value;
    }
    if (name == "reply") return ReplyMode::Parse(value).ToString();
    if (name == "variant") {
      if (value.empty()) throw std::invalid_argument("empty variant name");
      return value;  // checked against each model's variants in Plan
    }
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--" + name + ": " + e.what());
  }
  throw std::invalid_argument("echo has no parameter --" + name);
}

// Reads "listening on HOST:PORT" from a freshly started server.
harness::Endpoint AwaitListening(harness::ChildProcess& server) {
  // Generous: a pool of 10,000 processes takes a while to fork.
  const auto line = server.ReadLine(60s);
  const std::string prefix = "listening on ";
  if (!line || line->rfind(prefix, 0) != 0) {
    server.Stop(1s);
    std::string why = server.exit_description().empty() ? "no 'listening on' line within 60 s"
                                                         : server.exit_description();
    const std::string tail = server.StderrTail();
    throw std::runtime_error("server did not start: " + why + (tail.empty() ? "" : ": " + tail));
  }
  return harness::ParseEndpoint(line->substr(prefix.size()), false);
}

// A UDP run needs a model with a UDP server and a size that fits a datagram with its header.
// False: skip this run (a model without UDP that the user did not name); throws on a bad request.
bool CheckTransport(const ModelEntry* m, const nlohmann::json& p, bool models_named) {
  const auto size = p["size"].get<uint64_t>();
  const ReplyMode reply = ReplyMode::Parse(p.value("reply", "upper"));
  if (p.value("transport", "tcp") != "udp") {
    // A prefix is added per read: a message must fit one read of a server's buffer with it.
    if (reply.headroom() > 0 && size + reply.headroom() > kBufferSize) {
      throw std::invalid_argument(fmt::format("--size: a prefixed TCP reply is made per read, so a message and its "
                                              "prefix fit one {}-byte buffer: at most {} bytes, not {}",
                                              kBufferSize, kBufferSize - reply.headroom(), size));
    }
    return true;
  }
  if (m && !m->make_udp) {
    if (!models_named) return false;
    throw std::invalid_argument("model '" + m->name + "' has no UDP server (see: list)");
  }
  if (size < 16 || size + reply.headroom() > 65507) {
    throw std::invalid_argument(fmt::format("--size: a UDP message is 16 to {} bytes (its reply fits a datagram), not {}",
                                            65507 - reply.headroom(), size));
  }
  return true;
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

// Why a run's figures cannot stand, or "", the surest diagnosis first: a server whose replies are
// not the echo (wrong bytes at any time of the run, connections it closed), one that never answered
// in the window, or one that stopped answering partway through it (its throughput would average a
// working and a dead server). Silence is judged against the longest gap a working server could
// leave: 1 s, half the window, or ten open-loop intervals.
std::string Broken(const LoadResult& load, const LoadConfig& config) {
  if (load.wrong_bytes + load.broken_connections > 0) {
    return fmt::format("the server's replies are not the echo: {} wrong byte(s), {} connection(s) closed by it",
                       load.wrong_bytes, load.broken_connections);
  }
  if (load.messages == 0) return "no round trip completed in the " + harness::FormatDuration(config.duration) + " window";
  const double window = std::chrono::duration<double>(config.duration).count();
  const double allowed = std::max({1.0, window / 2, config.rate > 0 ? 10 / config.rate : 0.0});
  if (load.silent_seconds >= allowed) {
    return fmt::format("server stopped answering: no reply in the last {:.1f} s of the {:.1f} s window "
                       "({} round trips before)", load.silent_seconds, load.window_seconds, load.messages);
  }
  return "";
}

// Each connection is a file descriptor in the load generator and one in the server, both under
// this process's open-files limit (raised to its hard limit at start); a run that cannot open them
// is refused before any work.
void CheckFileLimit(uint64_t connections) {
  constexpr uint64_t kSpare = 64;  // listening socket, epoll, pipes, /proc reads
  rlimit limit{};
  if (connections == 0 || getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  if (connections + kSpare > limit.rlim_cur) {
    throw std::invalid_argument(fmt::format("--connections: {} connections need {} open files, and the limit here "
                                            "is {} (ulimit -n)", connections, connections + kSpare, limit.rlim_cur));
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

// What echo reports, declared once (harness/metrics.h): the summary table, `merge`, //plots:compare,
// the report and the validation read these from the results file.
std::vector<harness::Metric> Metrics() {
  using harness::Better;
  using harness::MergeRule;
  constexpr auto kNone = harness::Aggregation::kNone;
  const auto latency = [](const char* key, const char* meaning, const char* label, bool column) {
    return harness::Metric{.key = key, .unit = "us", .meaning = meaning, .better = Better::kLower,
                           .merge = MergeRule::kRecompute, .label = label, .format = ".1f", .always = true,
                           .compared = std::string(key) == "p99_us", .column = column};
  };
  const auto count = [](const char* key, const char* meaning, const char* label, MergeRule merge, bool always, bool column) {
    return harness::Metric{.key = key, .unit = "count", .meaning = meaning, .better = Better::kLower, .merge = merge,
                           .label = label, .format = ".0f", .always = always, .column = column};
  };
  const auto server = [](const char* key, const char* unit, const char* meaning, const char* label, const char* format,
                         bool compared, bool column) {
    return harness::Metric{.key = key, .unit = unit, .meaning = meaning, .better = Better::kLower,
                           .merge = MergeRule::kDrop, .label = label, .format = format, .compared = compared,
                           .column = column};
  };
  std::vector<harness::Metric> m = {
      {.key = "msgs_per_second", .unit = "1/s", .meaning = "round trips completed per second in the window",
       .better = Better::kHigher, .merge = MergeRule::kSum, .label = "msgs/s", .format = ".0f", .always = true,
       .compared = true, .column = true},
      {.key = "bytes_per_second", .unit = "bytes/s", .meaning = "payload bytes echoed per second (one way)",
       .better = Better::kHigher, .merge = MergeRule::kSum, .label = "bytes/s", .format = ".0f", .always = true},
      latency("p50_us", "median round trip", "p50 us", true),
      latency("p90_us", "90th percentile round trip", "p90 us", false),
      latency("p99_us", "99th percentile round trip", "p99 us", true),
      latency("p999_us", "99.9th percentile round trip", "p99.9 us", false),
      latency("max_us", "longest round trip", "max us", false),
      latency("mean_us", "mean round trip", "mean us", false),
      {.key = "latency_histogram", .unit = "ns", .meaning = "every round trip time (HDR-style buckets, 0.1% precision)",
       .aggregate = kNone, .merge = MergeRule::kHistogram, .label = "latency", .always = true},
      count("wrong_bytes", "reply bytes that differ from the echo expected (a failed run)", "wrong bytes",
            MergeRule::kSum, true, false),
      count("broken_connections", "connections the server closed (a failed run)", "broken", MergeRule::kSum, true, false),
      count("errors", "wrong bytes plus broken connections", "errors", MergeRule::kSum, true, true),
      count("lost", "UDP: requests never answered", "lost", MergeRule::kSum, false, false),
      {.key = "loss_rate", .unit = "fraction", .meaning = "UDP: lost / (answered + lost)", .better = Better::kLower,
       .merge = MergeRule::kRecompute, .label = "loss", .format = ".4f", .maximum = 1},
      {.key = "strays", .unit = "count", .meaning = "UDP: datagrams of another run or a probe on a reused port, ignored",
       .merge = MergeRule::kSum, .label = "strays", .format = ".0f"},
      {.key = "connections", .unit = "count", .meaning = "client connections (the load)", .merge = MergeRule::kSum,
       .label = "connections", .format = ".0f", .minimum = 1, .always = true},
      count("starved_connections", "connections that completed no round trip in the window", "starved",
            MergeRule::kSum, true, true),
      {.key = "fairness", .unit = "fraction", .meaning = "Jain's index of round trips per connection (1: all equal)",
       .better = Better::kHigher, .merge = MergeRule::kRecompute, .label = "fairness", .format = ".3f", .maximum = 1,
       .always = true, .column = true},
      {.key = "warmup_s", .unit = "s", .meaning = "warm-up before the window (until every connection had a reply)",
       .merge = MergeRule::kMax, .label = "warmup s", .format = ".2f", .always = true},
      {.key = "client_cpu_us_per_msg", .unit = "us", .meaning = "the load generator's CPU per round trip",
       .better = Better::kLower, .merge = MergeRule::kWeightedMean, .label = "client cpu us", .format = ".2f",
       .always = true},
      {.key = "client_cpu_utilization", .unit = "fraction",
       .meaning = "the load generator's threads' time running or runnable, over the window and the CPUs they can use "
                  "(over 0.9: client-bound)",
       .merge = MergeRule::kMax, .label = "client busy", .format = ".2f", .always = true},
      {.key = "offered_rate", .unit = "1/s", .meaning = "open loop: messages per second scheduled",
       .merge = MergeRule::kSum, .label = "offered/s", .format = ".0f"},
      {.key = "achieved_rate", .unit = "1/s", .meaning = "open loop: round trips per second completed (1% short: behind)",
       .better = Better::kHigher, .merge = MergeRule::kSum, .label = "achieved/s", .format = ".0f"},
      {.key = "capacity_msgs_per_second", .unit = "1/s",
       .meaning = "--capacity: the highest offered rate that met the SLO (a lower bound where client-bound)",
       .better = Better::kHigher, .label = "capacity/s", .format = ".0f", .compared = true, .column = true},
      server("server_cpu_us_per_msg", "us", "the server's CPU (its process tree) per round trip", "srv cpu us", ".2f",
             true, true),
      server("server_peak_rss_bytes", "bytes", "the server's peak resident memory (its process tree)", "srv rss MiB",
             ".1f", false, true),
      server("server_threads", "count", "the server's threads at the end of the window", "srv threads", ".0f", false, true),
      server("server_processes", "count", "the server's processes at the end of the window", "srv procs", ".0f", false,
             false),
      server("server_ctx_switches_per_msg", "count", "the server's context switches per round trip", "srv ctxsw/msg",
             ".2f", false, false),
  };
  for (auto& metric : m) {
    if (metric.key == "server_peak_rss_bytes") metric.scale = 1.0 / (1 << 20);
    if (metric.key == "server_processes") metric.minimum = 1;
  }
  return m;
}

// p50_us, p90_us, p99_us, p999_us, max_us and mean_us of a histogram of nanoseconds.
void PutLatencyMetrics(const harness::Histogram& ns, nlohmann::json& metrics) {
  for (const auto& [key, p] : {std::pair{"p50_us", 50.0}, {"p90_us", 90.0}, {"p99_us", 99.0}, {"p999_us", 99.9}}) {
    metrics[key] = static_cast<double>(ns.Percentile(p)) / 1e3;
  }
  metrics["max_us"] = static_cast<double>(ns.max()) / 1e3;
  metrics["mean_us"] = ns.mean() / 1e3;
}

// Jain's index of the union of parts, each with n connections, sum s of messages and index j:
// sum of squares of a part = s^2 / (n j), so the whole is (sum s)^2 / (sum n * sum s^2 / (n j)).
double CombinedFairness(const std::vector<const nlohmann::json*>& parts) {
  double total = 0, connections = 0, squares = 0;
  for (const auto* e : parts) {
    const double s = e->value("iterations", 0.0), n = e->value("connections", 0.0), j = e->value("fairness", 0.0);
    total += s;
    connections += n;
    if (s > 0 && n > 0 && j > 0) squares += s * s / (n * j);
  }
  return squares > 0 ? total * total / (connections * squares) : 0;
}

class EchoScenario final : public harness::Scenario {
 public:
  std::string name() const override { return "echo"; }
  bool has_client() const override { return true; }
  std::string description() const override {
    return "TCP or UDP echo, replies upper-cased (seeds 000-003), unchanged or prefixed (seed 004); closed or open "
           "loop, every byte checked";
  }

  std::vector<harness::ModelInfo> models() const override {
    std::vector<harness::ModelInfo> out;
    for (const auto& m : Models()) {
      std::string text = m.description + (m.make_udp ? " [tcp, udp]" : " [tcp]");
      for (size_t i = 0; i < m.variants.size(); ++i) {
        text += std::string(i == 0 ? "\n      variants (--variant):" : "") + "\n        " + m.variants[i].name +
                (i == 0 ? " (default)" : "") + "  " + m.variants[i].description;
      }
      out.push_back({m.name, text});
    }
    return out;
  }

  std::vector<harness::ParamInfo> params() const override {
    return {
        {"connections", "concurrent client connections",
         {{"smoke", "1,10"}, {"quick", "1,10,100"}, {"full", "1,10,100,1000,10000"}}},
        {"size", "message size in bytes (K, M suffixes)", {{"smoke", "64"}, {"quick", "64"}, {"full", "64,4096"}}},
        {"workers", "server worker threads or processes (models that take it; default: the model's)", {}},
        {"rate", "open loop: messages per second in all, latency from the scheduled send (default: closed loop)", {}},
        {"transport", "tcp or udp (udp: models with a UDP server; size 16..65507; loss counted)", {}},
        {"client-threads", "load generator threads, the connections spread across them (default 1)", {}},
        {"reply",
         "what the server sends back: upper (default; ASCII letters upper-cased), same (plain echo) or prefix:TEXT "
         "(TEXT, then the bytes: seed 004's Echo=>); the load generator checks every byte against it",
         {}},
        {"variant", "a model's variant (models that have them, see the list above; default: the model's first)", {}},
        {"capacity",
         "search the highest open-loop rate that meets an SLO (bare: --slo's, default p99:2ms): achieved within 1% "
         "of offered, no errors, loss or starved connections",
         {}, ""},
        {"slo", "the SLO of --capacity: PERCENTILE:BOUND, several joined by '+', e.g. p99:2ms+p50:500us", {}},
    };
  }

  Duration default_duration(const std::string& profile) const override {
    return profile == "smoke" ? Duration(300ms) : profile == "full" ? Duration(5s) : Duration(1s);
  }
  Duration default_warmup(const std::string& profile) const override {
    return profile == "smoke" ? Duration(100ms) : profile == "full" ? Duration(1s) : Duration(200ms);
  }
  int default_repetitions(const std::string& profile) const override {
    return profile == "smoke" ? 2 : profile == "full" ? 5 : 3;
  }

  std::vector<harness::Metric> metrics() const override { return Metrics(); }

  bool merges() const override { return true; }
  nlohmann::json MergedParams(const std::vector<nlohmann::json>& parts) const override;
  void Recompute(const std::vector<const nlohmann::json*>& parts, harness::Repetition& merged) const override;
  std::string Contradiction(const nlohmann::json& entry) const override;

  std::vector<harness::RunSpec> Plan(const harness::Options& options) const override {
    std::vector<const ModelEntry*> chosen;
    if (options.target) {
      chosen.push_back(nullptr);  // `load`: an external server
    } else if (options.models.empty()) {
      for (const auto& m : Models()) chosen.push_back(&m);
    } else {
      for (const auto& name : options.models) {
        const ModelEntry* m = FindModel(name);
        if (m == nullptr) throw std::invalid_argument("unknown model '" + name + "' for echo (see: list)");
        chosen.push_back(m);
      }
    }
    std::vector<harness::RunSpec> runs;
    uint64_t most_connections = 0;
    // --capacity (bare or with its SLO) or --slo: a capacity search per run, its SLO in the run's
    // params ("capacity"); --slo is then folded into it.
    harness::Options scoped = options;
    const bool search = options.params.count("capacity") || options.params.count("slo");
    if (search) {
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
    }
    for (const ModelEntry* m : chosen) {
      std::vector<std::string> used = {"capacity", "client-threads", "connections", "rate", "reply", "size", "transport"};
      harness::Options with_defaults = scoped;
      if (m && m->workers.default_list) {
        used.push_back("workers");
        with_defaults.params.try_emplace("workers", m->workers.default_list);
      }
      if (m && options.params.count("variant")) {
        const std::vector<std::string> mine = VariantsFor(*m, options.params.at("variant"), chosen);
        if (!mine.empty()) {
          used.push_back("variant");
          std::string list;
          for (const auto& v : mine) list += (list.empty() ? "" : ",") + v;
          with_defaults.params["variant"] = list;
        }
      }
      for (auto& p : harness::ParamProduct(params(), with_defaults, used, &ParseParam)) {
        if (!CheckTransport(m, p, !options.models.empty())) continue;
        harness::RunSpec run;
        run.scenario = "echo";
        run.model = m ? m->name : options.target_name;
        run.name = harness::RunName(run.scenario, run.model, p);
        run.params = std::move(p);
        if (options.target) run.params["target"] = *options.target;
        // A search's windows are many: half a second each unless --duration says.
        run.duration = options.duration.value_or(search ? Duration(500ms) : default_duration(options.profile));
        run.warmup = options.warmup.value_or(default_warmup(options.profile));
        // A capacity search is itself a dozen windows: one repetition unless asked for more.
        run.repetitions = options.repetitions.value_or(search ? 1 : default_repetitions(options.profile));
        run.target = options.target;
        run.server_pid = options.server_pid;
        run.self_path = options.self_path;
        if (search && options.params.count("slo")) run.consumed.push_back("slo");
        most_connections = std::max(most_connections, run.params["connections"].get<uint64_t>());
        runs.push_back(std::move(run));
      }
    }
    CheckFileLimit(most_connections);
    if (options.target) CheckTarget(runs, options);
    return runs;
  }

  harness::Repetition Measure(const harness::RunSpec& run, int) override;
  harness::Repetition MeasureCapacity(const harness::RunSpec& run);

  int Serve(const harness::ServeOptions& options) override;
};

// The server of a run, started for it (none for `load`), and the process whose usage is sampled.
struct Server {
  std::unique_ptr<harness::ChildProcess> child;
  harness::Endpoint target;
  std::optional<pid_t> sampled;

  // "" while it runs, else how it died.
  std::string Died() const {
    if (!child || child->Running()) return "";
    const std::string tail = child->StderrTail();
    return "server died during the run: " + child->exit_description() + (tail.empty() ? "" : ": " + tail);
  }
};

Server StartServer(const harness::RunSpec& run) {
  Server server;
  if (run.target) {
    server.target = harness::ParseEndpoint(*run.target, false);
    if (run.server_pid) server.sampled = *run.server_pid;
    return server;
  }
  std::vector<std::string> argv = {run.self_path, "serve", "--scenario=echo", "--model=" + run.model,
                                   "--listen=127.0.0.1:0"};
  if (run.params.contains("workers")) argv.push_back("--workers=" + run.params["workers"].dump());
  for (const char* key : {"transport", "reply", "variant"}) {
    if (run.params.contains(key)) argv.push_back(std::string("--") + key + "=" + run.params[key].get<std::string>());
  }
  server.child = std::make_unique<harness::ChildProcess>(argv, run.placement.server);
  server.target = AwaitListening(*server.child);
  server.sampled = server.child->pid();
  return server;
}

LoadConfig ConfigFor(const harness::RunSpec& run, const harness::Endpoint& target) {
  LoadConfig config;
  config.target = target;
  config.connections = run.params["connections"].get<int>();
  config.size = run.params["size"].get<size_t>();
  config.rate = run.params.value("rate", 0.0);
  config.udp = run.params.value("transport", "tcp") == "udp";
  config.threads = run.params.value("client-threads", 1);
  config.reply = ReplyMode::Parse(run.params.value("reply", "upper"));
  config.warmup = run.warmup;
  config.duration = run.duration;
  config.stop = &harness::g_interrupted;
  return config;
}

// What one window measured, on both sides.
struct Sample {
  LoadResult load;
  std::optional<harness::TreeUsage> before, after;  // the server's
  double client_cpu_s = 0;
  double client_demand_s = 0;  // run + runnable-waiting time of the load generator's threads
  double client_others_s = 0;  // CPU time others (processes, the hypervisor) took of its CPUs
  double window_start_unix = 0, window_end_unix = 0;  // wall clock: loads on other hosts can be lined up
};

Sample Drive(LoadConfig config, std::optional<pid_t> sampled, const harness::CpuList& client_cpus) {
  Sample s;
  std::optional<harness::NoiseMeter> others;
  double client_cpu_before = 0, client_demand_before = 0;
  config.on_window_start = [&] {
    if (sampled) s.before = harness::ReadProcessTreeUsage(*sampled);
    client_cpu_before = harness::ProcessCpuSeconds();
    client_demand_before = harness::ProcessCpuDemandSeconds();
    others.emplace(client_cpus);
    s.window_start_unix = harness::UnixSeconds();
  };
  config.on_window_end = [&] {
    if (sampled) s.after = harness::ReadProcessTreeUsage(*sampled);
    s.client_cpu_s = harness::ProcessCpuSeconds() - client_cpu_before;
    s.client_demand_s = harness::ProcessCpuDemandSeconds() - client_demand_before;
    const harness::NoiseReport took = others->Stop();
    s.client_others_s = (took.steal_fraction + took.others_fraction) * took.seconds * static_cast<double>(client_cpus.size());
    s.window_end_unix = harness::UnixSeconds();
  };
  s.load = RunLoad(config);
  return s;
}

// The figures of a window, or why it cannot stand. `client_cpus`: the CPUs the load generator may
// run on. Its utilisation is the larger of what its threads wanted (time run, or run and runnable
// where the kernel keeps that) over the window times the CPUs its threads can use, and how full its
// CPUs were (its time and what other processes and the hypervisor took) over the window times
// those CPUs: a load generator starved of CPU is as much the limit as a busy one.
harness::Repetition Figures(const Sample& s, const LoadConfig& config, const harness::CpuList& client_cpus) {
  const LoadResult& load = s.load;
  if (!load.ok) return harness::Repetition::Failed(load.error);
  if (load.interrupted) return harness::Repetition::Failed("interrupted");  // a cut window is no figure
  if (std::string broken = Broken(load, config); !broken.empty()) return harness::Repetition::Failed(broken);

  const double msgs = static_cast<double>(load.messages);
  harness::Repetition rep;
  rep.ok = true;
  rep.iterations = load.messages;
  rep.real_time_ns = load.window_seconds * 1e9 / msgs;
  auto& m = rep.metrics;
  m["msgs_per_second"] = msgs / load.window_seconds;
  m["bytes_per_second"] = msgs * static_cast<double>(config.size) / load.window_seconds;
  const auto& h = load.latency;
  PutLatencyMetrics(h, m);
  m["wrong_bytes"] = load.wrong_bytes;
  m["broken_connections"] = load.broken_connections;
  m["errors"] = load.wrong_bytes + load.broken_connections;
  if (config.udp) {
    m["lost"] = load.lost;
    m["loss_rate"] = static_cast<double>(load.lost) / (msgs + static_cast<double>(load.lost));
    m["strays"] = load.strays;  // datagrams of another run or probe on a reused port, ignored
  }
  m["connections"] = config.connections;
  m["starved_connections"] = std::count(load.per_connection.begin(), load.per_connection.end(), 0);
  m["fairness"] = harness::JainFairness(load.per_connection);
  m["warmup_s"] = load.warmup_seconds;
  m["client_cpu_us_per_msg"] = s.client_cpu_s * 1e6 / msgs;
  const double cpus = static_cast<double>(client_cpus.size());
  const double usable = std::min(cpus, static_cast<double>(std::clamp(config.threads, 1, config.connections)));
  const double busy = std::max(std::max(s.client_cpu_s, s.client_demand_s) / (load.window_seconds * usable),
                               (s.client_cpu_s + s.client_others_s) / (load.window_seconds * cpus));
  m["client_cpu_utilization"] = busy;
  rep.detail["client_bound"] = busy > kClientBusy;
  if (busy > kClientBusy) {
    rep.warnings.push_back(fmt::format("client-bound: the load generator wanted {:.0f}% of its {} CPU(s) (running "
                                       "or waiting for them); the server may have more to give (--client-threads, "
                                       "--client-cpus)",
                                       busy * 100, usable));
  }
  if (config.rate > 0) {
    m["offered_rate"] = config.rate;
    m["achieved_rate"] = msgs / load.window_seconds;
    const bool behind = msgs / load.window_seconds < 0.99 * config.rate;
    rep.detail["behind_schedule"] = behind;
    if (behind) {
      rep.warnings.push_back(fmt::format("behind schedule: achieved {:.0f} of the {:.0f} msgs/s offered ({:.1f}%)",
                                         msgs / load.window_seconds, config.rate,
                                         100 * msgs / load.window_seconds / config.rate));
    }
  }
  if (s.before && s.after) {
    // Summed over the server's process tree, so process models are charged for their children.
    const harness::ProcessUsage& b = s.before->total;
    const harness::ProcessUsage& a = s.after->total;
    const double server_cpu_ns = a.cpu_ns > b.cpu_ns ? static_cast<double>(a.cpu_ns - b.cpu_ns) : 0.0;
    rep.cpu_time_ns = server_cpu_ns / msgs;
    m["server_cpu_us_per_msg"] = server_cpu_ns / 1e3 / msgs;
    m["server_peak_rss_bytes"] = a.peak_rss_bytes;
    m["server_threads"] = a.threads;
    m["server_processes"] = s.after->processes;
    const double switches = static_cast<double>(a.voluntary_switches + a.involuntary_switches) -
                            static_cast<double>(b.voluntary_switches + b.involuntary_switches);
    m["server_ctx_switches_per_msg"] = std::max(0.0, switches) / msgs;
  } else {
    // No server to sample (`load` without --server-pid): Google Benchmark's cpu_time is then the
    // load generator's own CPU per message, and no server figure is invented.
    rep.cpu_time_ns = s.client_cpu_s * 1e9 / msgs;
  }
  rep.detail["latency_histogram"] = h.ToJson("ns");
  rep.detail["window_unix_s"] = {s.window_start_unix, s.window_end_unix};
  rep.detail["load_id"] = fmt::format("{:016x}", load.salt);  // merge tells one load given twice by it
  return rep;
}

harness::CpuList ClientCpus(const harness::RunSpec& run) {
  return run.placement.client.empty() ? harness::AvailableCpus() : run.placement.client;
}

harness::Repetition EchoScenario::Measure(const harness::RunSpec& run, int) {
  if (run.params.contains("capacity")) return MeasureCapacity(run);
  Server server = StartServer(run);
  const LoadConfig config = ConfigFor(run, server.target);
  harness::PinThisThread(run.placement.client);  // the load generator's threads start from this one
  const Sample sample = Drive(config, server.sampled, ClientCpus(run));
  if (std::string died = server.Died(); !died.empty()) return harness::Repetition::Failed(died);
  if (server.child) server.child->Stop(3s);
  return Figures(sample, config, ClientCpus(run));
}

// Why a step of a capacity search does not meet the objective at its offered rate, or "".
std::string Misses(const harness::Repetition& rep, const LoadConfig& config, const std::vector<SloBound>& slo) {
  if (!rep.ok) return rep.error;
  const auto& m = rep.metrics;
  if (m["achieved_rate"].get<double>() < 0.99 * config.rate) {
    return fmt::format("achieved {:.0f} of {:.0f} msgs/s", m["achieved_rate"].get<double>(), config.rate);
  }
  for (const SloBound& b : slo) {
    if (m[b.metric()].get<double>() > b.bound_us()) {
      return fmt::format("{} {:.0f} us > {:.0f} us", b.percentile, m[b.metric()].get<double>(), b.bound_us());
    }
  }
  for (const char* key : {"errors", "lost", "starved_connections"}) {
    if (m.value(key, 0.0) > 0) return fmt::format("{} {}", key, m[key].dump());
  }
  return "";
}

// The highest offered rate (open loop, latency from the scheduled send) at which the server keeps
// up (achieved within 1% of offered), meets every bound of the SLO, and loses, breaks and starves
// nothing. A closed-loop window first gives the scale; then rates go up by x1.5 from an eighth of it
// (or down by /2, to a hundredth of it at most) until one misses, and bisection between the last
// that met and the first that missed narrows it to 2%, at most kMaxSteps steps of three windows
// each. A step in which the load
// generator was over 90% busy ends the search: what it found is a lower bound ("client-bound"), not
// a capacity. The repetition's figures are those of the step at the capacity; every step is in
// `steps`.
harness::Repetition EchoScenario::MeasureCapacity(const harness::RunSpec& run) {
  constexpr int kMaxSteps = 14;
  constexpr int kWindowsPerStep = 3;
  constexpr double kResolution = 0.02;
  const std::vector<SloBound> slo = ParseSlo(run.params["capacity"].get<std::string>());
  Server server = StartServer(run);
  const LoadConfig base = ConfigFor(run, server.target);
  harness::PinThisThread(run.placement.client);
  nlohmann::json steps = nlohmann::json::array();
  std::string client_bound;  // the warning of the window that ended the search, if the client did

  // One step at `rate` (0: the closed-loop probe, one window): kWindowsPerStep windows, judged on
  // their medians (the achieved rate, each percentile of the SLO, the load generator's
  // utilisation) and the worst of their errors, losses and starved connections, so that one slow
  // window (this VM's idle vCPUs wake up late now and then) neither fails nor passes a rate alone.
  // Its figures are those of the window with the median of the SLO's first percentile.
  struct Step {
    harness::Repetition rep;
    std::string misses;
    bool client_bound = false;
  };
  const harness::CpuList client_cpus = ClientCpus(run);
  const auto step = [&](double rate) -> Step {
    LoadConfig config = base;
    config.rate = rate;
    std::vector<harness::Repetition> windows;
    for (int i = 0; i < (rate > 0 ? kWindowsPerStep : 1) && !harness::g_interrupted; ++i) {
      windows.push_back(Figures(Drive(config, server.sampled, client_cpus), config, client_cpus));
      if (std::string died = server.Died(); !died.empty()) throw std::runtime_error(died);
      if (!windows.back().ok) break;
    }
    Step out;
    nlohmann::json record = {{"offered", rate}, {"windows", windows.size()}};
    if (windows.empty() || !windows.back().ok) {
      out.rep = windows.empty() ? harness::Repetition::Failed("interrupted") : windows.back();
      out.misses = out.rep.error;
      record["verdict"] = out.misses;
      steps.push_back(std::move(record));
      return out;
    }
    const auto median = [&](const std::string& key) {
      std::vector<double> values;
      for (const auto& w : windows) values.push_back(w.metrics.value(key, 0.0));
      return harness::Median(values);
    };
    const auto worst = [&](const std::string& key) {
      double most = 0;
      for (const auto& w : windows) most = std::max(most, w.metrics.value(key, 0.0));
      return most;
    };
    std::vector<size_t> order(windows.size());
    std::iota(order.begin(), order.end(), 0);
    const std::string first = slo.front().metric();
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      return windows[x].metrics[first].get<double>() < windows[y].metrics[first].get<double>();
    });
    out.rep = windows[order[order.size() / 2]];
    harness::Repetition judged = out.rep;
    for (const std::string key : {"achieved_rate", "client_cpu_utilization"}) {
      if (judged.metrics.contains(key)) judged.metrics[key] = median(key);
    }
    for (const SloBound& b : slo) judged.metrics[b.metric()] = median(b.metric());
    for (const std::string key : {"errors", "lost", "starved_connections"}) {
      if (judged.metrics.contains(key)) judged.metrics[key] = worst(key);
    }
    out.misses = rate > 0 ? Misses(judged, config, slo) : "";
    const double busy = median("client_cpu_utilization");
    out.client_bound = rate > 0 && busy > kClientBusy;
    out.rep.detail["client_bound"] = out.client_bound;
    if (out.client_bound) {
      client_bound = fmt::format("client-bound: the load generator wanted {:.0f}% of its CPU(s) (median of {} windows)",
                                 busy * 100, windows.size());
    }
    for (const char* key : {"msgs_per_second", "mean_us", "p50_us", "p99_us", "p999_us", "server_cpu_us_per_msg",
                            "client_cpu_utilization", "server_peak_rss_bytes"}) {
      if (out.rep.metrics.contains(key)) record[key] = median(key);
    }
    nlohmann::json per_window = nlohmann::json::array();
    for (const auto& w : windows) per_window.push_back(w.metrics[first]);
    record[first + "_windows"] = std::move(per_window);
    record["client_bound"] = out.client_bound;
    record["verdict"] = out.misses.empty() ? "met" : out.misses;
    steps.push_back(std::move(record));
    return out;
  };

  const Step probe = step(0);
  if (!probe.rep.ok) return harness::Repetition::Failed("closed-loop probe: " + probe.rep.error);
  const double scale = probe.rep.metrics["msgs_per_second"].get<double>();
  double met = 0, missed = 0;  // the highest rate that met the objective; the lowest that missed
  harness::Repetition at_capacity;
  std::string first_miss;
  double rate = std::max(1.0, scale / 8);
  while (static_cast<int>(steps.size()) < kMaxSteps && !harness::g_interrupted) {
    Step s = step(rate);
    if (s.misses.empty() && rate > met) {
      met = rate;
      at_capacity = std::move(s.rep);
    } else if (!s.misses.empty()) {
      missed = missed == 0 ? rate : std::min(missed, rate);
      if (first_miss.empty()) first_miss = s.misses;
    }
    if (s.client_bound) break;  // what the server could do beyond this, the load generator cannot tell
    if (missed == 0) {
      rate *= 1.5;
    } else if (met == 0) {
      if (rate < scale / 100 || rate < 2) break;  // nothing in a useful range meets it (a starving pool)
      rate /= 2;
    } else if ((missed - met) / missed <= kResolution) {
      break;
    } else {
      rate = (met + missed) / 2;
    }
  }
  if (server.child) server.child->Stop(3s);
  if (harness::g_interrupted) return harness::Repetition::Failed("interrupted");
  if (met == 0) {
    return harness::Repetition::Failed("no rate met " + FormatSlo(slo) + ": at " + fmt::format("{:.0f}", rate) +
                                       " msgs/s, " + (first_miss.empty() ? client_bound : first_miss));
  }
  harness::Repetition rep = std::move(at_capacity);
  rep.metrics["capacity_msgs_per_second"] = met;
  rep.detail["steps"] = std::move(steps);
  rep.detail["capacity_limit"] = !client_bound.empty() ? "client" : missed > 0 ? "slo" : "steps";
  rep.warnings.erase(std::remove_if(rep.warnings.begin(), rep.warnings.end(),
                                    [](const std::string& w) { return w.rfind("client-bound", 0) == 0; }),
                     rep.warnings.end());
  if (!client_bound.empty()) {
    rep.warnings.push_back(fmt::format("client-bound: capacity at least {:.0f} msgs/s; the search stopped where {}",
                                       met, client_bound.substr(client_bound.find(':') + 2)));
    rep.detail["client_bound"] = true;
  } else if (missed == 0) {
    rep.warnings.push_back(fmt::format("steps: the search ran out of windows still meeting the SLO at {:.0f} msgs/s", met));
  }
  return rep;
}

// Loads of one server at the same time: the connections add up (the other parameters are the same).
nlohmann::json EchoScenario::MergedParams(const std::vector<nlohmann::json>& parts) const {
  nlohmann::json params = parts.front();
  uint64_t connections = 0;
  for (const auto& p : parts) connections += p.value("connections", uint64_t{0});
  params["connections"] = connections;
  return params;
}

// Percentiles from the merged histogram (never averaged), fairness recombined exactly, loss from
// the summed counts; wall time per round trip from the summed rate, CPU per round trip the load
// generators' (each load divided the server's CPU by its own messages only: dropped).
void EchoScenario::Recompute(const std::vector<const nlohmann::json*>& parts, harness::Repetition& merged) const {
  auto& m = merged.metrics;
  const double messages = static_cast<double>(merged.iterations);
  PutLatencyMetrics(harness::Histogram::FromJson(merged.detail.at("latency_histogram")), m);
  m["fairness"] = CombinedFairness(parts);
  if (m.contains("lost")) m["loss_rate"] = m["lost"].get<double>() / (messages + m["lost"].get<double>());
  const double rate = m.value("msgs_per_second", 0.0);
  merged.real_time_ns = rate > 0 ? 1e9 / rate : 0;
  merged.cpu_time_ns = m.value("client_cpu_us_per_msg", 0.0) * 1e3;
}

// The rate is the iterations over the window (its wall-clock ends are read a little apart from the
// steady clock that timed it: 5% and 50 ms of slack), the bytes the rate times the size, the
// connections the parameter's.
std::string EchoScenario::Contradiction(const nlohmann::json& e) const {
  const double iterations = e["iterations"].get<double>();
  const double window = e["window_unix_s"][1].get<double>() - e["window_unix_s"][0].get<double>();
  const double rate = e.value("msgs_per_second", 0.0);
  if (std::abs(rate * window - iterations) > 0.05 * iterations + 0.05 * rate) {
    return fmt::format("msgs_per_second {:.6g} over its {:.6g} s window makes {:.6g} round trips, not its {:.0f} "
                       "iterations",
                       rate, window, rate * window, iterations);
  }
  const double size = e["params"].value("size", 0.0);
  if (const double bytes = e.value("bytes_per_second", 0.0); std::abs(bytes - rate * size) > 1e-6 * bytes + 1) {
    return fmt::format("bytes_per_second {:.6g} is not msgs_per_second x size ({:.6g})", bytes, rate * size);
  }
  if (e.value("connections", -1.0) != e["params"].value("connections", -2.0) ||
      e.value("starved_connections", 0.0) > e.value("connections", 0.0)) {
    return "connections and starved_connections do not match the run's connections";
  }
  return "";
}

int EchoScenario::Serve(const harness::ServeOptions& options) {
  const ModelEntry* model = FindModel(options.model);
  if (model == nullptr) throw std::invalid_argument("unknown model '" + options.model + "' for echo (see: list)");
  ServerConfig config;
  if (auto w = options.params.find("workers"); w != options.params.end()) {
    config.workers = ParseParam("workers", w->second).get<int>();
  }
  if (auto r = options.params.find("reply"); r != options.params.end()) {
    config.reply = ReplyMode::Parse(ParseParam("reply", r->second).get<std::string>());
  }
  if (auto v = options.params.find("variant"); v != options.params.end()) {
    if (!FindVariant(*model, v->second)) {
      std::string names;
      for (const Variant& x : model->variants) names += (names.empty() ? "" : ", ") + x.name;
      throw std::invalid_argument("--variant: model '" + model->name + "' has " +
                                  (names.empty() ? "no variants" : "the variants " + names + ", not '" + v->second + "'"));
    }
    config.variant = v->second;
  }
  // Block the stop signals before any thread exists, so every thread inherits the mask and the
  // main thread alone takes them in sigwait().
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const bool udp = options.params.count("transport") && ParseParam("transport", options.params.at("transport")) == "udp";
  if (udp && !model->make_udp) throw std::invalid_argument("model '" + model->name + "' has no UDP server (see: list)");
  uint16_t port = 0;
  int fd = -1;
  try {
    fd = udp ? BindUdp(options.listen.host, options.listen.port, &port)
             : Listen(options.listen.host, options.listen.port, &port);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
  auto server = (udp ? model->make_udp : model->make)(config);
  try {
    server->Start(fd);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());  // e.g. io_uring refused by the kernel: one line, exit 2
  }
  const std::string address = harness::Endpoint{options.listen.host, port}.ToString();
  if (options.on_listening) options.on_listening(address);
  std::cout << "listening on " << address << std::endl;
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Stop();
  return 0;
}

}  // namespace

HARNESS_REGISTER(harness::ScenarioEntry, std::make_unique<EchoScenario>());

}  // namespace echo
