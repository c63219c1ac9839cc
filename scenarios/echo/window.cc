#include "scenarios/echo/window.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "harness/noise.h"
#include "harness/process_usage.h"
#include "harness/runner.h"
#include "harness/stats.h"
#include "scenarios/echo/arrivals.h"
#include "scenarios/echo/echo_metrics.h"
#include "scenarios/echo/slo.h"

namespace echo {

LoadConfig ConfigFor(const harness::RunSpec& run, const harness::Endpoint& target) {
  LoadConfig config;
  config.target = target;
  config.connections = run.params["connections"].get<int>();
  config.size = run.params["size"].get<size_t>();
  config.rate = run.params.value("rate", 0.0);
  config.udp = run.params.value("transport", "tcp") == "udp";
  config.threads = run.params.value("client-threads", 1);
  config.reply = ReplyMode::Parse(run.params.value("reply", "upper"));
  if (run.params.contains("work")) config.work = WorkSpec::Parse(run.params["work"].get<std::string>());
  config.arrivals = ParseArrivals(run.params.value("arrivals", "poisson"));
  config.seed = run.params.value("seed", uint64_t{0});
  config.depth = run.params.value("depth", 1);
  config.barrier = run.params.value("start", "barrier") == "barrier";
  // Alone on its CPUs (the default split) a polling driver keeps them: the server's CPUs are its
  // own, and there is a CPU for each driver. A server whose CPUs are unknown (`load`), unpinned
  // or shared, or more drivers than CPUs, may be waiting for one: then a poll yields.
  const harness::Placement& p = run.placement;
  const bool apart =
      !p.client.empty() && !p.server.empty() && p.UnderTest().size() == p.client.size() + p.server.size();
  config.yield_when_polling = !apart || static_cast<size_t>(config.threads) > p.client.size();
  config.warmup = run.warmup;
  config.duration = run.duration;
  config.stop = &harness::g_interrupted;
  return config;
}

namespace {

// Whether every process of `tree` is in `of`.
bool IsPartOf(const std::vector<pid_t>& tree, const std::vector<pid_t>& of) {
  return std::all_of(tree.begin(), tree.end(),
                     [&](pid_t pid) { return std::find(of.begin(), of.end(), pid) != of.end(); });
}

}  // namespace

Sample Drive(LoadConfig config, std::optional<pid_t> sampled, const harness::CpuList& client_cpus,
             const std::function<void(bool on)>& tracer) {
  Sample s;
  std::optional<harness::NoiseMeter> others;
  double client_cpu_before = 0, client_demand_before = 0;
  harness::CpuSplit client_split_before;
  // The readings are taken outside the window, the slowest (the /proc scans) farthest from it:
  // before the load begins and after the window. The server's tree is read over the warm-up and
  // the window, at the same load, and scaled to the window (`server_span_s`). At the window's
  // opening, 4 ms of scans on the load generator's CPU held its sends back, and the burst that
  // followed queued at the server (a first 100 ms with p99 3 to 8 times the rest's at 80% of a
  // server's capacity). What stays at the edges is read from this process in microseconds, the
  // wall clock and the tracer next to the steady clock that opens and closes the window.
  std::vector<pid_t> server_tree;
  std::chrono::steady_clock::time_point server_read_before;
  config.on_load_start = [&] {
    others.emplace(client_cpus);
    if (sampled) {
      server_tree = harness::ProcessTree(*sampled);  // a process per connection has them all by now
      server_read_before = std::chrono::steady_clock::now();
      s.before = harness::ReadProcessTreeUsage(server_tree);
    }
  };
  std::optional<uint64_t> server_cpu_at_start;
  config.on_window_start = [&] {
    if (sampled) server_cpu_at_start = harness::TreeCpuNs(server_tree);
    client_cpu_before = harness::ProcessCpuSeconds();
    client_split_before = harness::ProcessCpuSplit();
    client_demand_before = harness::ProcessCpuDemandSeconds();
    s.window_start_unix = harness::UnixSeconds();
    if (tracer) tracer(true);
  };
  config.on_window_end = [&] {
    if (tracer) tracer(false);
    s.client_cpu_s = harness::ProcessCpuSeconds() - client_cpu_before;
    const harness::CpuSplit split = harness::ProcessCpuSplit();
    s.client_split = {split.user_s - client_split_before.user_s, split.kernel_s - client_split_before.kernel_s};
    s.client_demand_s = harness::ProcessCpuDemandSeconds() - client_demand_before;
    if (const auto at_end = sampled ? harness::TreeCpuNs(server_tree) : std::nullopt; at_end && server_cpu_at_start) {
      s.server_window_cpu_ns = *at_end > *server_cpu_at_start ? *at_end - *server_cpu_at_start : 0;
    }
    if (sampled) {
      s.server_span_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - server_read_before).count();
      // Read as it is now: a process forked since the load began (a process per connection
      // without the barrier, still accepting) ran within the span, all of its time, but not at
      // the window's opening, where its clock was not read: then the span's figure stands.
      const std::vector<pid_t> tree = harness::ProcessTree(*sampled);
      if (!IsPartOf(tree, server_tree)) s.server_window_cpu_ns.reset();
      s.after = harness::ReadProcessTreeUsage(tree);
    }
    const harness::NoiseReport took = others->Stop();
    s.client_others_share = took.steal_fraction + took.others_fraction;
  };
  s.load = RunLoad(config);
  // The wall clock's end is the start's plus the steady clock's window: on_window_end runs when the
  // load's main thread wakes, late on a busy machine (105 ms once), and a late end made two loads
  // that ran together look apart to `merge`.
  if (s.window_start_unix > 0) s.window_end_unix = s.window_start_unix + s.load.window_seconds;
  return s;
}

namespace {

// An open loop's figures of its own schedule: what it offered and what the window held of it (a
// Poisson window holds its rate give or take its square root), whether the server kept up with that,
// the gaps it left between sends, and how late it sent against its schedule.
void PutScheduleFigures(const LoadResult& load, const LoadConfig& config, harness::Repetition& rep) {
  const double msgs = static_cast<double>(load.messages), window = load.window_seconds;
  const double scheduled = static_cast<double>(load.scheduled) / window;
  auto& m = rep.metrics;
  m["offered_rate"] = config.rate;
  m["scheduled_rate"] = scheduled;
  m["achieved_rate"] = msgs / window;
  const double sent_cv = load.gaps.Cv(), due_cv = load.due_gaps.Cv();
  m["arrival_cv"] = sent_cv;
  m["scheduled_arrival_cv"] = due_cv;
  rep.detail["arrivals"] = ToString(config.arrivals);
  rep.detail["arrival_seed"] = load.seed;
  rep.detail["wake_latency_us"] = load.wake_latency_us;
  const bool behind = !KeptUp(msgs / window, scheduled, window);
  rep.detail["behind_schedule"] = behind;
  if (behind) {
    rep.warnings.push_back(
        fmt::format("behind schedule: achieved {:.0f} of the {:.0f} msgs/s scheduled in the window ({:.1f}%)",
                    msgs / window, scheduled, 100 * msgs / window / scheduled));
  }
  if (load.send_lateness.count() == 0) return;
  const double late_p99 = static_cast<double>(load.send_lateness.Percentile(99)) / 1e3;
  m["send_lateness_p50_us"] = static_cast<double>(load.send_lateness.Percentile(50)) / 1e3;
  m["send_lateness_p99_us"] = late_p99;
  m["send_lateness_max_us"] = static_cast<double>(load.send_lateness.max()) / 1e3;
  const double p99 = static_cast<double>(load.latency.Percentile(99)) / 1e3;
  if (late_p99 > kPunctualUs) {
    rep.spoiled = fmt::format(
        "load generator late: its sends left {:.0f} us after their time at p99, over the {:.0f} us it holds to: the "
        "server was not offered the arrivals asked for",
        late_p99, kPunctualUs);
  } else if (ArrivalsStrayed(sent_cv, due_cv)) {
    rep.spoiled = fmt::format(
        "load generator off its schedule: the gaps between its sends had a CV of {:.3f} against its schedule's "
        "{:.3f} ({}; its latest send {:.0f} us late): the server was not offered the arrivals asked for",
        sent_cv, due_cv, sent_cv > due_cv ? "burstier" : "smoother",
        static_cast<double>(load.send_lateness.max()) / 1e3);
  }
  if (late_p99 > kLateShare * p99) {
    rep.warnings.push_back(fmt::format(
        "load generator late: its sends left {:.0f} us after their time at p99, {:.0f}% of the round trip's p99 "
        "({:.0f} us), which counts it as the server's",
        late_p99, 100 * late_p99 / p99, p99));
  }
}

// The window's round trips by interval (count, p50 and p99 in us), and whether its latency drifted.
void PutIntervals(const LoadResult& load, harness::Repetition& rep) {
  nlohmann::json intervals = nlohmann::json::array();
  for (const auto& h : load.intervals.latency) {
    intervals.push_back(
        {h.count(), static_cast<double>(h.Percentile(50)) / 1e3, static_cast<double>(h.Percentile(99)) / 1e3});
  }
  rep.detail["intervals"] = {{"interval_s", static_cast<double>(load.intervals.interval_ns) / 1e9},
                             {"columns", {"count", "p50_us", "p99_us"}},
                             {"rows", std::move(intervals)}};
  const std::string drift = Drift(load.intervals);
  rep.detail["steady"] = drift.empty();
  if (!drift.empty()) rep.warnings.push_back(drift);
}

// The load generator's utilisation: the larger of what its threads wanted (time run, or run and
// runnable where the kernel keeps that) over the window times the CPUs its threads can use, and
// how full its CPUs were (its time and what other processes and the hypervisor took) over the
// window times those CPUs: a load generator starved of CPU is as much the limit as a busy one.
void PutClientFigures(const Sample& s, const LoadConfig& config, const harness::CpuList& client_cpus,
                      harness::Repetition& rep) {
  const double msgs = static_cast<double>(s.load.messages), window = s.load.window_seconds;
  auto& m = rep.metrics;
  m["warmup_s"] = s.load.warmup_seconds;
  if (config.barrier) m["barrier_s"] = s.load.barrier_seconds;
  if (s.load.unanswered_at_barrier > 0) {
    rep.warnings.push_back(
        fmt::format("start barrier: {} of {} connections unanswered after {:.1f} s; the load began "
                    "without them",
                    s.load.unanswered_at_barrier, config.connections, s.load.barrier_seconds));
  }
  // Polling for a send due sooner than a wake-up takes is the load generator waiting: not its load.
  const double poll = s.load.poll_seconds;
  const double cpu = std::max(0.0, s.client_cpu_s - poll), demand = std::max(0.0, s.client_demand_s - poll);
  m["client_cpu_us_per_msg"] = cpu * 1e6 / msgs;
  // Its split into user and kernel time (getrusage's, from where timer ticks found it) only where
  // it barely polled: how the ticks split a polling loop cannot be taken out (on this VM they
  // called half of one user time, though three quarters of its time was in the system call).
  if (const double total = s.client_split.user_s + s.client_split.kernel_s; total > 0 && poll <= kPollShare * total) {
    m["client_user_us_per_msg"] = s.client_split.user_s * (cpu / total) * 1e6 / msgs;
    m["client_kernel_us_per_msg"] = s.client_split.kernel_s * (cpu / total) * 1e6 / msgs;
  }
  const double cpus = static_cast<double>(client_cpus.size());
  const double usable = std::min(cpus, static_cast<double>(std::clamp(config.threads, 1, config.connections)));
  const double busy =
      std::max(std::max(cpu, demand) / (window * usable), cpu / (window * cpus) + s.client_others_share);
  m["client_cpu_utilization"] = busy;
  rep.detail["client_bound"] = busy > kClientBusy;
  if (busy > kClientBusy) {
    rep.warnings.push_back(
        fmt::format("client-bound: the load generator wanted {:.0f}% of its {} CPU(s) (running "
                    "or waiting for them); the server may have more to give (--client-threads, "
                    "--client-cpus)",
                    busy * 100, usable));
  }
  rep.detail["client_poll_s"] = poll;
  if (config.rate > 0) PutScheduleFigures(s.load, config, rep);
}

// The server's figures, summed over its process tree (process models are charged for their
// children). No server to sample (`load` without --server-pid): Google Benchmark's cpu_time is then
// the load generator's own CPU per message, and no server figure is invented.
void PutServerFigures(const Sample& s, harness::Repetition& rep) {
  const double msgs = static_cast<double>(s.load.messages);
  if (!s.before || !s.after) {
    rep.cpu_time_ns = s.client_cpu_s * 1e9 / msgs;
    return;
  }
  const harness::ProcessUsage& b = s.before->total;
  const harness::ProcessUsage& a = s.after->total;
  // The server's tree was read before the load and after the window (the reading takes 1-6 ms here,
  // 0.8 s for 10,000 threads), over the warm-up and the window at the same load: its switches, and
  // its CPU when the window's own reading of it is missing, are scaled from that span to the window.
  const double to_window = s.server_span_s > s.load.window_seconds ? s.load.window_seconds / s.server_span_s : 1.0;
  const double server_cpu_ns = s.server_window_cpu_ns ? static_cast<double>(*s.server_window_cpu_ns)
                               : a.cpu_ns > b.cpu_ns  ? static_cast<double>(a.cpu_ns - b.cpu_ns) * to_window
                                                      : 0.0;
  auto& m = rep.metrics;
  rep.cpu_time_ns = server_cpu_ns / msgs;
  m["server_cpu_us_per_msg"] = server_cpu_ns / 1e3 / msgs;
  // The exact total, split as the kernel's ticks split it (/proc's utime and stime).
  const double user = a.user_ns > b.user_ns ? static_cast<double>(a.user_ns - b.user_ns) : 0.0;
  const double kernel = a.kernel_ns > b.kernel_ns ? static_cast<double>(a.kernel_ns - b.kernel_ns) : 0.0;
  if (user + kernel > 0) {
    m["server_user_us_per_msg"] = server_cpu_ns * user / (user + kernel) / 1e3 / msgs;
    m["server_kernel_us_per_msg"] = server_cpu_ns * kernel / (user + kernel) / 1e3 / msgs;
  }
  m["server_peak_rss_bytes"] = a.peak_rss_bytes;
  m["server_threads"] = a.threads;
  m["server_processes"] = s.after->processes;
  const double switches = static_cast<double>(a.voluntary_switches + a.involuntary_switches) -
                          static_cast<double>(b.voluntary_switches + b.involuntary_switches);
  m["server_ctx_switches_per_msg"] = std::max(0.0, switches) * to_window / msgs;
}

}  // namespace

harness::Repetition Figures(const Sample& s, const LoadConfig& config, const harness::CpuList& client_cpus) {
  const LoadResult& load = s.load;
  if (!load.ok) return harness::Repetition::Failed(load.error);
  if (load.interrupted) return harness::Repetition::Failed("interrupted");  // a cut window is no figure
  if (std::string broken = BrokenReason(load, config); !broken.empty()) return harness::Repetition::Failed(broken);
  const double msgs = static_cast<double>(load.messages);
  harness::Repetition rep;
  rep.ok = true;
  rep.iterations = load.messages;
  rep.real_time_ns = load.window_seconds * 1e9 / msgs;
  auto& m = rep.metrics;
  m["msgs_per_second"] = msgs / load.window_seconds;
  m["bytes_per_second"] = msgs * static_cast<double>(config.size) / load.window_seconds;
  PutLatencyMetrics(load.latency, m);
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
  m["fairness_random_order"] = harness::RandomOrderFairness(msgs, static_cast<double>(load.per_connection.size()));
  PutClientFigures(s, config, client_cpus, rep);
  PutServerFigures(s, rep);
  rep.detail["latency_histogram"] = load.latency.ToJson("ns");
  PutIntervals(load, rep);
  if (!load.class_latency.empty()) {
    nlohmann::json histograms;
    PutClassMetrics(load.class_latency, load.class_slowdown, m, histograms);
    rep.detail["class_histograms"] = std::move(histograms);
  }
  rep.detail["window_unix_s"] = {s.window_start_unix, s.window_end_unix};
  rep.detail["load_id"] = fmt::format("{:016x}", load.salt);  // merge tells one load given twice by it
  return rep;
}

harness::CpuList ClientCpus(const harness::RunSpec& run) {
  return run.placement.client.empty() ? harness::AvailableCpus() : run.placement.client;
}

// Why a run's figures cannot stand, or "", the surest diagnosis first: a server whose replies are
// not the echo (wrong bytes at any time of the run, connections it closed), one that never answered
// in the window, or one that stopped answering partway through it (its throughput would average a
// working and a dead server). Silence is judged against the longest gap a working server could
// leave: 1 s, half the window, or ten open-loop intervals.
std::string BrokenReason(const LoadResult& load, const LoadConfig& config) {
  if (load.unread_headers > 0) {
    return fmt::format(
        "the server sent --work's request headers back as they came ({} byte(s)): it echoes without "
        "doing the work (serve it with --work, or a model that does it)",
        load.unread_headers);
  }
  if (load.wrong_bytes + load.broken_connections > 0) {
    return fmt::format("the server's replies are not the echo: {} wrong byte(s), {} connection(s) closed by it",
                       load.wrong_bytes, load.broken_connections);
  }
  if (load.messages == 0)
    return "no round trip completed in the " + harness::FormatDuration(config.duration) + " window";
  const double window = std::chrono::duration<double>(config.duration).count();
  const double allowed = std::max({1.0, window / 2, config.rate > 0 ? 10 / config.rate : 0.0});
  if (load.silent_seconds >= allowed) {
    return fmt::format(
        "server stopped answering: no reply in the last {:.1f} s of the {:.1f} s window "
        "({} round trips before)",
        load.silent_seconds, load.window_seconds, load.messages);
  }
  return "";
}
}  // namespace echo
