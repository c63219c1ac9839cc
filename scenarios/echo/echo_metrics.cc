#include "scenarios/echo/echo_metrics.h"

#include <string>
#include <utility>

namespace echo {

namespace {

using harness::Better;
using harness::MergeRule;

harness::Metric Latency(const char* key, const char* meaning, const char* label, bool column) {
  return harness::Metric{.key = key,
                         .unit = "us",
                         .meaning = meaning,
                         .better = Better::kLower,
                         .merge = MergeRule::kRecompute,
                         .label = label,
                         .format = ".1f",
                         .always = true,
                         .compared = std::string(key) == "p99_us",
                         .column = column};
}

harness::Metric Count(const char* key, const char* meaning, const char* label, MergeRule merge, bool always,
                      bool column) {
  return harness::Metric{.key = key,
                         .unit = "count",
                         .meaning = meaning,
                         .better = Better::kLower,
                         .merge = merge,
                         .label = label,
                         .format = ".0f",
                         .always = always,
                         .column = column};
}

// Sampled from the server's process tree; each load divides them by its own messages, so a merge
// drops them (or charges them anew from the server's usage log).
harness::Metric Server(const char* key, const char* unit, const char* meaning, const char* label, const char* format,
                       bool compared, bool column) {
  return harness::Metric{.key = key,
                         .unit = unit,
                         .meaning = meaning,
                         .better = Better::kLower,
                         .merge = MergeRule::kDrop,
                         .label = label,
                         .format = format,
                         .compared = compared,
                         .column = column};
}

// How late the load generator's own sends left against their schedule (an open loop).
harness::Metric Lateness(const char* key, const char* which, const char* label) {
  return harness::Metric{.key = key,
                         .unit = "us",
                         .meaning = std::string("open loop: ") + which +
                                    " of how late a send due inside the window left against its schedule",
                         .better = Better::kLower,
                         .merge = MergeRule::kMax,
                         .label = label,
                         .format = ".1f"};
}

std::vector<harness::Metric> RateAndLatency() {
  return {
      {.key = "msgs_per_second",
       .unit = "1/s",
       .meaning = "round trips completed per second in the window",
       .better = Better::kHigher,
       .merge = MergeRule::kSum,
       .label = "msgs/s",
       .format = ".0f",
       .always = true,
       .compared = true,
       .column = true},
      {.key = "bytes_per_second",
       .unit = "bytes/s",
       .meaning = "payload bytes echoed per second (one way)",
       .better = Better::kHigher,
       .merge = MergeRule::kSum,
       .label = "bytes/s",
       .format = ".0f",
       .always = true},
      Latency("p50_us", "median round trip", "p50 us", true),
      Latency("p90_us", "90th percentile round trip", "p90 us", false),
      Latency("p99_us", "99th percentile round trip", "p99 us", true),
      Latency("p999_us", "99.9th percentile round trip", "p99.9 us", false),
      Latency("max_us", "longest round trip", "max us", false),
      Latency("mean_us", "mean round trip", "mean us", false),
      {.key = "latency_histogram",
       .unit = "ns",
       .meaning = "every round trip time (HDR-style buckets, 0.1% precision)",
       .aggregate = harness::Aggregation::kNone,
       .merge = MergeRule::kHistogram,
       .label = "latency",
       .always = true},
  };
}

std::vector<harness::Metric> ErrorsAndFairness() {
  return {
      Count("wrong_bytes", "reply bytes that differ from the echo expected (a failed run)", "wrong bytes",
            MergeRule::kSum, true, false),
      Count("broken_connections", "connections the server closed (a failed run)", "broken", MergeRule::kSum, true,
            false),
      Count("errors", "wrong bytes plus broken connections", "errors", MergeRule::kSum, true, true),
      Count("lost", "UDP: requests never answered", "lost", MergeRule::kSum, false, false),
      {.key = "loss_rate",
       .unit = "fraction",
       .meaning = "UDP: lost / (answered + lost)",
       .better = Better::kLower,
       .merge = MergeRule::kRecompute,
       .label = "loss",
       .format = ".4f",
       .maximum = 1},
      {.key = "strays",
       .unit = "count",
       .meaning = "UDP: datagrams of another run or a probe on a reused port, ignored",
       .merge = MergeRule::kSum,
       .label = "strays",
       .format = ".0f"},
      {.key = "connections",
       .unit = "count",
       .meaning = "client connections (the load)",
       .merge = MergeRule::kSum,
       .label = "connections",
       .format = ".0f",
       .minimum = 1,
       .always = true},
      Count("starved_connections", "connections that completed no round trip in the window", "starved", MergeRule::kSum,
            true, true),
      {.key = "fairness",
       .unit = "fraction",
       .meaning = "Jain's index of round trips per connection (1: all equal)",
       .better = Better::kHigher,
       .merge = MergeRule::kRecompute,
       .label = "fairness",
       .format = ".3f",
       .maximum = 1,
       .always = true,
       .column = true},
      {.key = "fairness_random_order",
       .unit = "fraction",
       .meaning = "Jain's index the same round trips would have, each given to a connection chosen at random: "
                  "m / (m + 1 - 1/n) for m round trips a connection; a fairness below it is less fair than chance",
       .merge = MergeRule::kRecompute,
       .label = "fair if random",
       .format = ".3f",
       .maximum = 1},
  };
}

std::vector<harness::Metric> LoadGenerator() {
  return {
      {.key = "warmup_s",
       .unit = "s",
       .meaning = "warm-up before the window, from the start barrier (without one: until every connection had a "
                  "reply)",
       .merge = MergeRule::kMax,
       .label = "warmup s",
       .format = ".2f",
       .always = true},
      {.key = "client_cpu_us_per_msg",
       .unit = "us",
       .meaning = "the load generator's CPU per round trip (less its polling for a send due sooner than a wake-up)",
       .better = Better::kLower,
       .merge = MergeRule::kWeightedMean,
       .label = "client cpu us",
       .format = ".2f",
       .always = true},
      {.key = "client_user_us_per_msg",
       .unit = "us",
       .meaning = "the load generator's CPU per round trip in user space (less its polling)",
       .better = Better::kLower,
       .merge = MergeRule::kWeightedMean,
       .label = "client user us",
       .format = ".2f"},
      {.key = "client_kernel_us_per_msg",
       .unit = "us",
       .meaning = "the load generator's CPU per round trip in the kernel (system calls, the network stack)",
       .better = Better::kLower,
       .merge = MergeRule::kWeightedMean,
       .label = "client kernel us",
       .format = ".2f"},
      {.key = "client_cpu_utilization",
       .unit = "fraction",
       .meaning = "the load generator's threads' time running or runnable, over the window and the CPUs they can use "
                  "(over 0.9: client-bound)",
       .merge = MergeRule::kMax,
       .label = "client busy",
       .format = ".2f",
       .always = true},
  };
}

// An open loop's figures of its own schedule, the start barrier's time, and the capacity search's result.
std::vector<harness::Metric> OpenLoop() {
  return {
      {.key = "offered_rate",
       .unit = "1/s",
       .meaning = "open loop: messages per second scheduled",
       .merge = MergeRule::kSum,
       .label = "offered/s",
       .format = ".0f"},
      {.key = "scheduled_rate",
       .unit = "1/s",
       .meaning = "open loop: messages per second due inside the window (Poisson: the offered rate give or take its "
                  "square root); the achieved rate is held to this",
       .merge = MergeRule::kSum,
       .label = "scheduled/s",
       .format = ".0f"},
      {.key = "arrival_cv",
       .unit = "ratio",
       .meaning = "open loop: coefficient of variation of the gaps between the sends (1: Poisson, 0: uniform)",
       .merge = MergeRule::kDrop,
       .label = "arrival cv",
       .format = ".3f"},
      {.key = "scheduled_arrival_cv",
       .unit = "ratio",
       .meaning = "open loop: coefficient of variation of the gaps between the sends' due times, the schedule's own "
                  "(arrival_cv had every send left on time)",
       .merge = MergeRule::kDrop,
       .label = "sched cv",
       .format = ".3f"},
      Lateness("send_lateness_p50_us", "median", "late p50 us"),
      Lateness("send_lateness_p99_us", "99th percentile", "late p99 us"),
      Lateness("send_lateness_max_us", "most", "late max us"),
      {.key = "barrier_s",
       .unit = "s",
       .meaning = "start barrier: from the load's start until every connection had been answered once",
       .merge = MergeRule::kMax,
       .label = "barrier s",
       .format = ".2f"},
      {.key = "achieved_rate",
       .unit = "1/s",
       .meaning = "open loop: round trips per second completed (1% short: behind)",
       .better = Better::kHigher,
       .merge = MergeRule::kSum,
       .label = "achieved/s",
       .format = ".0f"},
      {.key = "capacity_msgs_per_second",
       .unit = "1/s",
       .meaning = "--capacity: the highest offered rate that met the SLO (a lower bound where client-bound)",
       .better = Better::kHigher,
       .label = "capacity/s",
       .format = ".0f",
       .compared = true,
       .column = true},
  };
}

// --work with two classes. Recomputed by a merge from the class histograms (in the entry's
// "class_histograms"), which hold the window's round trips by class.
std::vector<harness::Metric> ByClass() {
  std::vector<harness::Metric> m;
  for (const char* cls : {"short", "long"}) {
    for (const char* p : {"p50", "p99"}) {
      m.push_back({.key = std::string(cls) + "_" + p + "_us",
                   .unit = "us",
                   .meaning = std::string(p) + " round trip of the " + cls + " requests (--work with two classes)",
                   .better = Better::kLower,
                   .merge = MergeRule::kRecompute,
                   .label = std::string(cls) + " " + p + " us",
                   .format = ".1f",
                   .compared = std::string(p) == "p99"});
      m.push_back({.key = std::string(cls) + "_slowdown_" + p,
                   .unit = "ratio",
                   .meaning = std::string(p) + " of the " + cls +
                              " requests' slowdown: round trip over the request's own CPU and wait",
                   .better = Better::kLower,
                   .merge = MergeRule::kRecompute,
                   .label = std::string(cls) + " slowdown " + p,
                   .format = ".1f",
                   .minimum = 0});
    }
  }
  m.push_back({.key = "long_share",
               .unit = "fraction",
               .meaning = "the long requests' share of the round trips (--work with two classes)",
               .merge = MergeRule::kRecompute,
               .label = "long share",
               .format = ".4f",
               .maximum = 1});
  return m;
}

std::vector<harness::Metric> ServerSide() {
  std::vector<harness::Metric> m = {
      Server("server_cpu_us_per_msg", "us", "the server's CPU (its process tree) per round trip", "srv cpu us", ".2f",
             true, true),
      Server("server_user_us_per_msg", "us",
             "the server's CPU per round trip in user space (the exact total split as /proc's utime and stime split it)",
             "srv user us", ".2f", false, false),
      Server("server_kernel_us_per_msg", "us",
             "the server's CPU per round trip in the kernel: system calls, the network stack, scheduling",
             "srv kernel us", ".2f", false, false),
      Server("server_peak_rss_bytes", "bytes", "the server's peak resident memory (its process tree)", "srv rss MiB",
             ".1f", false, true),
      Server("server_threads", "count", "the server's threads at the end of the window", "srv threads", ".0f", false,
             true),
      Server("server_processes", "count", "the server's processes at the end of the window", "srv procs", ".0f", false,
             false),
      Server("server_ctx_switches_per_msg", "count", "the server's context switches per round trip", "srv ctxsw/msg",
             ".2f", false, false),
      Server("syscalls_per_msg", "count",
             "the server's system calls per round trip (--syscalls: perf counting the kernel's syscall tracepoints)",
             "srv syscalls/msg", ".2f", false, false),
  };
  m[3].scale = 1.0 / (1 << 20);  // RSS shown in MiB
  m[5].minimum = 1;              // the server itself
  return m;
}

}  // namespace

std::vector<harness::Metric> Metrics() {
  std::vector<harness::Metric> all;
  for (auto group : {RateAndLatency(), ErrorsAndFairness(), LoadGenerator(), OpenLoop(), ByClass(), ServerSide()}) {
    all.insert(all.end(), group.begin(), group.end());
  }
  return all;
}

void PutLatencyMetrics(const harness::Histogram& ns, nlohmann::json& metrics) {
  for (const auto& [key, p] : {std::pair{"p50_us", 50.0}, {"p90_us", 90.0}, {"p99_us", 99.0}, {"p999_us", 99.9}}) {
    metrics[key] = static_cast<double>(ns.Percentile(p)) / 1e3;
  }
  metrics["max_us"] = static_cast<double>(ns.max()) / 1e3;
  metrics["mean_us"] = ns.mean() / 1e3;
}

void PutClassMetrics(const std::vector<harness::Histogram>& latency, const std::vector<harness::Histogram>& slowdown,
                     nlohmann::json& metrics, nlohmann::json& histograms) {
  if (latency.size() != 2 || slowdown.size() != 2) return;
  const double all = static_cast<double>(latency[0].count() + latency[1].count());
  for (int k = 0; k < 2; ++k) {
    const std::string cls = k == 0 ? "short" : "long";
    if (latency[k].count() > 0) {
      metrics[cls + "_p50_us"] = static_cast<double>(latency[k].Percentile(50)) / 1e3;
      metrics[cls + "_p99_us"] = static_cast<double>(latency[k].Percentile(99)) / 1e3;
    }
    if (slowdown[k].count() > 0) {
      metrics[cls + "_slowdown_p50"] = static_cast<double>(slowdown[k].Percentile(50)) / 1e3;
      metrics[cls + "_slowdown_p99"] = static_cast<double>(slowdown[k].Percentile(99)) / 1e3;
    }
    histograms[cls] = {{"latency", latency[k].ToJson("ns")}, {"slowdown", slowdown[k].ToJson("thousandths")}};
  }
  if (all > 0) metrics["long_share"] = static_cast<double>(latency[1].count()) / all;
}

void RecomputeClassMetrics(const std::vector<const nlohmann::json*>& parts, nlohmann::json& metrics,
                           nlohmann::json& histograms) {
  std::vector<harness::Histogram> latency(2), slowdown(2);
  for (const auto* e : parts) {
    if (!e->contains("class_histograms")) return;
    for (int k = 0; k < 2; ++k) {
      const auto& h = (*e)["class_histograms"].at(k == 0 ? "short" : "long");
      latency[k].Merge(harness::Histogram::FromJson(h.at("latency")));
      slowdown[k].Merge(harness::Histogram::FromJson(h.at("slowdown")));
    }
  }
  PutClassMetrics(latency, slowdown, metrics, histograms);
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

}  // namespace echo
