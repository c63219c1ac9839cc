// The echo scenario: plans runs over models x connections x size (x workers ...), starts each
// model's server as a child process (`harness serve`), drives it with the load generator for one
// window per repetition (or a capacity search), and turns what both sides measured into the
// result names of the README. Knows no model but by its name. Its parts: plan.h (parameters and
// runs), server_process.h, window.h (one measured window), capacity_search.h, echo_metrics.h
// (what it reports), serve.h.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <optional>

#include "harness/placement.h"
#include "harness/runner.h"
#include "harness/scenario.h"
#include "harness/stats.h"
#include "scenarios/echo/capacity_search.h"
#include "scenarios/echo/echo_metrics.h"
#include "scenarios/echo/plan.h"
#include "scenarios/echo/serve.h"
#include "scenarios/echo/server.h"
#include "scenarios/echo/server_process.h"
#include "scenarios/echo/slo.h"
#include "scenarios/echo/tracing.h"
#include "scenarios/echo/window.h"

namespace echo {
namespace {

using harness::Duration;
using namespace std::chrono_literals;

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
        {"connections",
         "concurrent client connections",
         {{"smoke", "1,10"}, {"quick", "1,10,100"}, {"full", "1,10,100,1000,10000"}}},
        {"size", "message size in bytes (K, M suffixes)", {{"smoke", "64"}, {"quick", "64"}, {"full", "64,4096"}}},
        {"workers", "server worker threads or processes (models that take it; default: the model's)", {}},
        {"rate", "open loop: messages per second in all, latency from the scheduled send (default: closed loop)", {}},
        {"arrivals",
         "open loop: poisson (default; exponential gaps) or uniform (all alike); drawn from --seed",
         {}},
        {"seed", "open loop: the arrival process's seed (default: one drawn per load, recorded as arrival_seed)", {}},
        {"depth", "closed loop: messages in flight per connection (default 1; not with a prefix --reply)", {}},
        {"start",
         "barrier (default: every connection answered once before the load begins) or ramp (each starts at once)",
         {}},
        {"transport", "tcp or udp (udp: models with a UDP server; size 16..65507; loss counted)", {}},
        {"client-threads", "load generator threads, the connections spread across them (default 1)", {}},
        {"reply",
         "what the server sends back: upper (default; ASCII letters upper-cased), same (plain echo) or prefix:TEXT "
         "(TEXT, then the bytes: seed 004's Echo=>); the load generator checks every byte against it",
         {}},
        {"work",
         "what each request costs the server: cpu:fixed:50us, cpu:exp:20us, cpu:bimodal:0.995:10us:1ms (P, then the "
         "value drawn with P, then the other), wait:fixed:1ms, wait:exp:1ms, or a cpu and a wait joined by '+'; "
         "carried in a header of each request (TCP), the same sequence for every model",
         {}},
        {"variant", "a model's variant (models that have them, see the list above; default: the model's first)", {}},
        {"capacity",
         "search the highest open-loop rate that meets an SLO (bare: --slo's, default p99:2ms): achieved within 1% "
         "of offered, no errors, loss or starved connections",
         {},
         ""},
        {"slo", "the SLO of --capacity: PERCENTILE:BOUND, several joined by '+', e.g. p99:2ms+p50:500us", {}},
        {"syscalls",
         "count the server's system calls in each window, by kind (perf; root or CAP_PERFMON): syscalls_per_msg",
         {},
         ""},
        {"flamegraph",
         "sample the server's stacks in one extra window per run (perf record) for the report's flame graph",
         {},
         ""},
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

  std::vector<std::string> server_params() const override { return ServerParams(); }

  std::vector<harness::RunSpec> Plan(const harness::Options& options) const override {
    return PlanRuns(*this, options);
  }

  harness::Repetition Measure(const harness::RunSpec& run, int) override;
  int Serve(const harness::ServeOptions& options) override { return echo::Serve(options); }
};

harness::Repetition EchoScenario::Measure(const harness::RunSpec& run, int repetition) {
  Server server = StartServer(run);
  const LoadConfig config = ConfigFor(run, server.target);
  const harness::CpuList client_cpus = ClientCpus(run);
  harness::PinThisThread(run.placement.client);  // the load generator's threads start from this one
  if (run.params.contains("capacity")) {
    const harness::NoiseProbe probe = harness::RealNoise();
    CapacityLimits limits;
    if (run.redo == 0) limits.noisy_redos = 0;
    CapacitySearch search(
        ParseSlo(run.params["capacity"].get<std::string>()),
        [&](double rate) {
          LoadConfig at_rate = config;
          at_rate.rate = rate;
          const harness::NoiseWatch watch = probe(run.placement.UnderTest());
          harness::Repetition window = Figures(Drive(at_rate, server.sampled, client_cpus), at_rate, client_cpus);
          harness::NoiseReport noise = watch();
          noise.threshold = run.noise_threshold;
          noise.others_judged = !run.target;
          window.detail["noise"] = noise.ToJson();
          if (std::string died = server.ExitReason(); !died.empty()) throw std::runtime_error(died);
          return window;
        },
        limits, &harness::g_interrupted);
    harness::Repetition rep = search.Run();
    rep.noise_judged = true;
    if (server.child) server.child->Stop(3s);
    return rep;
  }
  std::optional<harness::SyscallCounter> syscalls;
  if (CountsSyscalls(run)) syscalls.emplace(*server.sampled, client_cpus);
  const Sample sample = Drive(config, server.sampled, client_cpus, [&](bool on) {
    if (syscalls) on ? syscalls->Enable() : syscalls->Disable();
  });
  if (std::string died = server.ExitReason(); !died.empty()) return harness::Repetition::Failed(died);
  harness::Repetition rep = Figures(sample, config, client_cpus);
  if (rep.ok && syscalls) PutSyscalls(syscalls->Finish(), rep);
  if (rep.ok && Profiles(run, repetition)) rep.detail["profile"] = ProfileWindow(config, *server.sampled, client_cpus);
  if (server.child) server.child->Stop(3s);
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
  if (!parts.empty() && parts.front()->contains("fairness_random_order")) {
    m["fairness_random_order"] = harness::RandomOrderFairness(messages, m.value("connections", 0.0));
  }
  nlohmann::json histograms;
  RecomputeClassMetrics(parts, m, histograms);
  if (!histograms.is_null()) merged.detail["class_histograms"] = std::move(histograms);
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
    return fmt::format(
        "msgs_per_second {:.6g} over its {:.6g} s window makes {:.6g} round trips, not its {:.0f} "
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

}  // namespace

HARNESS_REGISTER(harness::ScenarioEntry, std::make_unique<EchoScenario>());

}  // namespace echo
