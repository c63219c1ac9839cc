// The echo scenario: plans runs over models x connections x size (x workers), starts each model's
// server as a child process (`harness serve`), drives it with the load generator, and turns what
// both sides measured into the result names of the README. Knows no model but by its name.
#include <signal.h>
#include <sys/resource.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>
#include <stdexcept>

#include "harness/child_process.h"
#include "harness/histogram.h"
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
constexpr uint64_t kMaxSize = 64 << 20;

nlohmann::json ParseParam(const std::string& name, const std::string& value) {
  try {
    if (name == "connections") return harness::ParseCount(value, 1, kMaxConnections);
    if (name == "size") return harness::ParseCount(value, 1, kMaxSize);
    if (name == "workers") return harness::ParseCount(value, 1, 20000);
    if (name == "rate") return harness::ParseCount(value, 1, 10'000'000);
    if (name == "transport") {
      if (value != "tcp" && value != "udp") throw std::invalid_argument("must be tcp or udp: '" + value + "'");
      return value;
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
  if (p.value("transport", "tcp") != "udp") return true;
  if (m && !m->make_udp) {
    if (!models_named) return false;
    throw std::invalid_argument("model '" + m->name + "' has no UDP server (see: list)");
  }
  const auto size = p["size"].get<uint64_t>();
  if (size < 16 || size > 65507) {
    throw std::invalid_argument("--size: a UDP message is 16 to 65507 bytes, not " + std::to_string(size));
  }
  return true;
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
    return "TCP echo, ASCII letters upper-cased (seeds 000-003); closed loop, every byte checked";
  }

  std::vector<harness::ModelInfo> models() const override {
    std::vector<harness::ModelInfo> out;
    for (const auto& m : Models()) out.push_back({m.name, m.description + (m.make_udp ? " [tcp, udp]" : " [tcp]")});
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
    for (const ModelEntry* m : chosen) {
      std::vector<std::string> used = {"connections", "rate", "size", "transport"};
      harness::Options with_defaults = options;
      if (m && m->workers.default_list) {
        used.push_back("workers");
        with_defaults.params.try_emplace("workers", m->workers.default_list);
      }
      for (auto& p : harness::ParamProduct(params(), with_defaults, used, &ParseParam)) {
        if (!CheckTransport(m, p, !options.models.empty())) continue;
        harness::RunSpec run;
        run.scenario = "echo";
        run.model = m ? m->name : options.target_name;
        run.name = harness::RunName(run.scenario, run.model, p);
        run.params = std::move(p);
        if (options.target) run.params["target"] = *options.target;
        run.duration = options.duration.value_or(default_duration(options.profile));
        run.warmup = options.warmup.value_or(default_warmup(options.profile));
        run.repetitions = options.repetitions.value_or(default_repetitions(options.profile));
        run.target = options.target;
        run.server_pid = options.server_pid;
        run.self_path = options.self_path;
        most_connections = std::max(most_connections, run.params["connections"].get<uint64_t>());
        runs.push_back(std::move(run));
      }
    }
    CheckFileLimit(most_connections);
    if (options.target) CheckTarget(runs, options);
    return runs;
  }

  harness::Repetition Measure(const harness::RunSpec& run, int) override;

  int Serve(const harness::ServeOptions& options) override;
};

harness::Repetition EchoScenario::Measure(const harness::RunSpec& run, int) {
  std::unique_ptr<harness::ChildProcess> server;
  LoadConfig config;
  std::optional<pid_t> sampled;
  if (run.target) {
    config.target = harness::ParseEndpoint(*run.target, false);
    if (run.server_pid) sampled = *run.server_pid;
  } else {
    std::vector<std::string> argv = {run.self_path, "serve", "--scenario=echo", "--model=" + run.model,
                                     "--listen=127.0.0.1:0"};
    if (run.params.contains("workers")) argv.push_back("--workers=" + run.params["workers"].dump());
    if (run.params.contains("transport")) argv.push_back("--transport=" + run.params["transport"].get<std::string>());
    server = std::make_unique<harness::ChildProcess>(argv, run.placement.server);
    config.target = AwaitListening(*server);
    sampled = server->pid();
  }
  config.connections = run.params["connections"].get<int>();
  config.size = run.params["size"].get<size_t>();
  config.rate = run.params.value("rate", 0.0);
  config.udp = run.params.value("transport", "tcp") == "udp";
  config.warmup = run.warmup;
  config.duration = run.duration;
  config.stop = &harness::g_interrupted;

  std::optional<harness::TreeUsage> before, after;
  double client_cpu_before = 0, client_cpu_after = 0;
  double window_start_unix = 0, window_end_unix = 0;  // wall clock: loads on other hosts can be lined up
  const auto unix_now = [] {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  config.on_window_start = [&] {
    if (sampled) before = harness::ReadProcessTreeUsage(*sampled);
    client_cpu_before = harness::ProcessCpuSeconds();
    window_start_unix = unix_now();
  };
  config.on_window_end = [&] {
    if (sampled) after = harness::ReadProcessTreeUsage(*sampled);
    client_cpu_after = harness::ProcessCpuSeconds();
    window_end_unix = unix_now();
  };
  harness::PinThisThread(run.placement.client);  // the load generator's threads start from this one
  LoadResult load = RunLoad(config);

  if (server && !server->Running()) {
    const std::string tail = server->StderrTail();
    return harness::Repetition::Failed("server died during the run: " + server->exit_description() +
                                       (tail.empty() ? "" : ": " + tail));
  }
  if (server) server->Stop(3s);
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
  m["client_cpu_us_per_msg"] = (client_cpu_after - client_cpu_before) * 1e6 / msgs;
  if (before && after) {
    // Summed over the server's process tree, so process models are charged for their children.
    const harness::ProcessUsage& b = before->total;
    const harness::ProcessUsage& a = after->total;
    const double server_cpu_ns = a.cpu_ns > b.cpu_ns ? static_cast<double>(a.cpu_ns - b.cpu_ns) : 0.0;
    rep.cpu_time_ns = server_cpu_ns / msgs;
    m["server_cpu_us_per_msg"] = server_cpu_ns / 1e3 / msgs;
    m["server_peak_rss_bytes"] = a.peak_rss_bytes;
    m["server_threads"] = a.threads;
    m["server_processes"] = after->processes;
    const double switches = static_cast<double>(a.voluntary_switches + a.involuntary_switches) -
                            static_cast<double>(b.voluntary_switches + b.involuntary_switches);
    m["server_ctx_switches_per_msg"] = std::max(0.0, switches) / msgs;
  } else {
    // No server to sample (`load` without --server-pid): Google Benchmark's cpu_time is then the
    // load generator's own CPU per message, and no server figure is invented.
    rep.cpu_time_ns = (client_cpu_after - client_cpu_before) * 1e9 / msgs;
  }
  rep.detail["latency_histogram"] = h.ToJson("ns");
  rep.detail["window_unix_s"] = {window_start_unix, window_end_unix};
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

int EchoScenario::Serve(const harness::ServeOptions& options) {
  const ModelEntry* model = FindModel(options.model);
  if (model == nullptr) throw std::invalid_argument("unknown model '" + options.model + "' for echo (see: list)");
  ServerConfig config;
  if (auto w = options.params.find("workers"); w != options.params.end()) {
    config.workers = ParseParam("workers", w->second).get<int>();
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
  std::cout << "listening on " << harness::Endpoint{options.listen.host, port}.ToString() << std::endl;
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Stop();
  return 0;
}

}  // namespace

HARNESS_REGISTER(harness::ScenarioEntry, std::make_unique<EchoScenario>());

}  // namespace echo
