// The pipeline scenario: seed 002's download -> parse, under each executor, each repetition in a
// fresh `harness measure` process (isolated()).
// Checks every item was parsed exactly once (the checksum), and reports makespan against the lower
// bound, item latency, CPU utilisation, peak threads and memory, and the timeline.
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "harness/params.h"
#include "harness/placement.h"
#include "harness/process_usage.h"
#include "harness/scenario.h"
#include "harness/stats.h"
#include "scenarios/pipeline/executor.h"
#include "scenarios/pipeline/lower_bound.h"

namespace pipeline {
namespace {

using harness::Duration;
using namespace std::chrono_literals;

// "uniform:10ms:30ms"
std::pair<Duration, Duration> ParseDistribution(const std::string& text) {
  const size_t a = text.find(':'), b = text.rfind(':');
  if (text.rfind("uniform:", 0) != 0 || a == b) {
    throw std::invalid_argument("--download: expected uniform:MIN:MAX, e.g. uniform:10ms:30ms, not '" + text + "'");
  }
  const Duration lo = harness::ParseDuration(text.substr(a + 1, b - a - 1));
  const Duration hi = harness::ParseDuration(text.substr(b + 1));
  if (hi < lo) throw std::invalid_argument("--download: MAX is below MIN in '" + text + "'");
  return {lo, hi};
}

nlohmann::json ParseParam(const std::string& name, const std::string& value) {
  try {
    if (name == "items") return harness::ParseCount(value, 1, 100000);
    if (name == "workers") return harness::ParseCount(value, 1, 4096);
    if (name == "seed") return harness::ParseCount(value, 0, UINT32_MAX);
    if (name == "parse") return harness::FormatDuration(harness::ParseDuration(value));
    if (name == "download") {
      ParseDistribution(value);  // validates
      return value;
    }
    if (name == "mode") {
      if (value != "coupled" && value != "decoupled")
        throw std::invalid_argument("must be coupled or decoupled: '" + value + "'");
      return value;
    }
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    throw std::invalid_argument(what.rfind("--", 0) == 0 ? what : "--" + name + ": " + what);
  }
  throw std::invalid_argument("pipeline has no parameter --" + name);
}

uint64_t ThreadsNow() {
  std::istringstream in(harness::ReadProcFile("/proc/self/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoull(line.substr(8));
  }
  return 0;
}

uint64_t RssBytes(pid_t pid) {
  std::istringstream in(harness::ReadProcFile("/proc/" + std::to_string(pid) + "/statm"));
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// While a run goes on, samples this process's thread count every millisecond and, for process
// models, the children the run's thread has forked (count every millisecond, summed RSS every 10 ms:
// /proc reads of a hundred children each millisecond would cost the run a core). Its own CPU time
// is reported so that it can be taken out of the run's.
class UsageSampler {
 public:
  UsageSampler(pid_t run_tid, bool children)
      : thread_([this, run_tid, children] {
          for (int tick = 0; !stop_; ++tick) {
            peak_threads_ = std::max<uint64_t>(peak_threads_, ThreadsNow());
            if (children) {
              const auto pids = harness::ChildrenOfThread(run_tid);
              peak_children_ = std::max<uint64_t>(peak_children_, pids.size());
              if (tick % 10 == 0) {
                uint64_t rss = 0;
                for (pid_t pid : pids) rss += RssBytes(pid);
                peak_children_rss_ = std::max(peak_children_rss_.load(), rss);
              }
            }
            std::this_thread::sleep_for(1ms);
          }
          timespec ts{};
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
          cpu_s_ = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
        }) {}
  void Stop() {
    stop_ = true;
    thread_.join();
  }
  uint64_t peak_threads() const { return peak_threads_ - 1; }  // not counting the sampler
  uint64_t peak_children() const { return peak_children_; }
  uint64_t peak_children_rss() const { return peak_children_rss_; }
  double cpu_seconds() const { return cpu_s_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> peak_threads_{0}, peak_children_{0}, peak_children_rss_{0};
  double cpu_s_ = 0;
  std::thread thread_;
};

// Resets VmHWM, so that the peak RSS read after a run is that run's (Linux 4.0+).
void ResetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

class PipelineScenario final : public harness::Scenario {
 public:
  std::string name() const override { return "pipeline"; }
  std::string description() const override {
    return "download -> parse (seed 002): coupled or decoupled, against its lower bound, each repetition in a fresh "
           "process";
  }
  std::vector<harness::ModelInfo> models() const override {
    std::vector<harness::ModelInfo> out;
    for (const auto& e : Executors()) out.push_back({e.name, e.description});
    return out;
  }
  std::vector<harness::ParamInfo> params() const override {
    return {
        {"items", "pages to download and parse", {{"smoke", "20"}, {"quick", "100"}, {"full", "100"}}},
        {"download",
         "download time distribution, uniform:MIN:MAX",
         {{"smoke", "uniform:2ms:6ms"}, {"quick", "uniform:10ms:30ms"}, {"full", "uniform:10ms:30ms"}}},
        {"parse",
         "CPU time to parse one page (calibrated once)",
         {{"smoke", "200us"}, {"quick", "1ms"}, {"full", "1ms"}}},
        {"workers",
         "threads or processes of a pool, or threads running timers or fibers (models that take it)",
         {{"smoke", "4"}, {"quick", "9"}, {"full", "1,2,4,8,16,32,64,128,256"}}},
        {"mode",
         "coupled (download task parses) or decoupled (its done-callback submits the parse)",
         {{"smoke", "coupled,decoupled"}, {"quick", "coupled,decoupled"}, {"full", "coupled,decoupled"}}},
        {"seed", "seed of the download times", {{"smoke", "1"}, {"quick", "1"}, {"full", "1"}}},
    };
  }
  Duration default_duration(const std::string&) const override { return Duration(0); }
  Duration default_warmup(const std::string&) const override { return Duration(0); }
  int default_repetitions(const std::string& profile) const override {
    return profile == "smoke" ? 2 : profile == "full" ? 5 : 3;
  }
  std::vector<harness::Metric> metrics() const override {
    using harness::Better;
    const auto metric = [](const char* key, const char* unit, const char* meaning, Better better, const char* label,
                           const char* format, bool column) {
      return harness::Metric{.key = key,
                             .unit = unit,
                             .meaning = meaning,
                             .better = better,
                             .label = label,
                             .format = format,
                             .always = true,
                             .column = column};
    };
    std::vector<harness::Metric> m = {
        metric("makespan_s", "s", "from the first submission to the last parse", Better::kLower, "makespan s", ".3f",
               true),
        metric("lower_bound_s", "s", "no schedule can finish sooner (downloads, parses, workers, cores)", Better::kNone,
               "bound s", ".3f", true),
        metric("efficiency", "fraction", "lower bound / makespan (1: as fast as possible)", Better::kHigher,
               "efficiency", ".3f", true),
        metric("items_per_second", "1/s", "items parsed per second of makespan", Better::kHigher, "items/s", ".1f",
               true),
        metric("items", "count", "pages downloaded and parsed", Better::kNone, "items", ".0f", false),
        metric("parse_ms", "ms", "the median parse of the run (--parse, give or take the machine)", Better::kNone,
               "parse ms", ".3f", false),
        metric("p50_ms", "ms", "median time from the start to an item's parse", Better::kLower, "p50 ms", ".1f", false),
        metric("p99_ms", "ms", "99th percentile time from the start to an item's parse", Better::kLower, "p99 ms",
               ".1f", true),
        metric("cpu_utilization", "fraction", "CPU used / (makespan x cores)", Better::kNone, "cpu util", ".2f", true),
        metric("peak_threads", "count", "the measuring process's most threads at once", Better::kNone, "threads", ".0f",
               true),
        metric("peak_processes", "count", "the measuring process and its children, most at once", Better::kNone,
               "processes", ".0f", true),
        metric("peak_rss_bytes", "bytes", "peak resident memory, children's summed in", Better::kLower, "rss MiB",
               ".1f", false),
    };
    for (auto& metric : m) {
      if (metric.key == "peak_rss_bytes") {
        metric.scale = 1.0 / (1 << 20);
        metric.always = false;  // where /proc could not be read
      }
      if (metric.key == "peak_processes") metric.minimum = 1;
    }
    return m;
  }

  std::vector<harness::RunSpec> Plan(const harness::Options& options) const override {
    std::vector<const ExecutorEntry*> chosen;
    for (const auto& e : Executors()) {
      if (options.models.empty() || std::count(options.models.begin(), options.models.end(), e.name))
        chosen.push_back(&e);
    }
    std::vector<harness::RunSpec> runs;
    for (const ExecutorEntry* e : chosen) {
      std::vector<std::string> used = {"items", "download", "parse", "seed"};
      if (e->traits & kTakesWorkers) used.push_back("workers");
      if (e->traits & kHasModes) used.push_back("mode");
      for (auto& p : harness::ParamProduct(params(), options, used, &ParseParam)) {
        harness::RunSpec run = harness::NewRun(*this, e->name, std::move(p), options);
        // Calibrated here, once, so that every model parses with the same work (and reaches the same
        // checksum) although each repetition is measured in a process of its own.
        run.plan_data["parse_units"] = UnitsFor(harness::ParseDuration(run.params["parse"].get<std::string>()));
        runs.push_back(std::move(run));
      }
    }
    return runs;
  }

  std::string SummaryNotes(const nlohmann::json& document) const override;

  // Each repetition in a fresh process: a process model forks the measuring process, and what
  // earlier runs left in the harness (heap, cached thread stacks) made every fork slower.
  bool isolated() const override { return true; }

  harness::Repetition Measure(const harness::RunSpec& run, int) override;
};

RunConfig ConfigOf(const harness::RunSpec& run) {
  RunConfig config;
  config.workload.items = run.params["items"].get<int>();
  std::tie(config.workload.download_min, config.workload.download_max) =
      ParseDistribution(run.params["download"].get<std::string>());
  config.workload.parse = harness::ParseDuration(run.params["parse"].get<std::string>());
  config.workload.seed = run.params["seed"].get<uint64_t>();
  config.workers = run.params.value("workers", 1);
  config.decoupled = run.params.value("mode", "coupled") == "decoupled";
  config.units = run.plan_data.at("parse_units").get<uint64_t>();  // calibrated once, in Plan()
  config.downloads = DownloadTimes(config.workload);
  return config;
}

// What the items' times say: their checksum, latencies, the fastest parse and the timeline.
struct ItemFigures {
  uint64_t checksum = 0;
  std::vector<double> latency_ms, parse_ms;
  double parse_s = 0;
  nlohmann::json timeline = nlohmann::json::array();
};

// The calibration aims at `parse` but the machine's speed drifts by a few percent; the bound takes
// the fastest parse this run saw, if that was quicker, so that no run can beat it (every parse does
// the same work, so none can take less than the fastest did).
ItemFigures FiguresOf(const std::vector<ItemTimes>& times, const RunConfig& config) {
  ItemFigures f;
  f.parse_s = std::chrono::duration<double>(config.workload.parse).count();
  for (const ItemTimes& t : times) {
    f.checksum += t.result;
    f.parse_s = std::min(f.parse_s, t.parse_end - t.parse_start);
    f.parse_ms.push_back((t.parse_end - t.parse_start) * 1e3);
    f.latency_ms.push_back(t.parse_end * 1e3);
    // [parse worker, download start, end, parse start, end (ms), download worker or -1]
    f.timeline.push_back({t.worker, t.download_start * 1e3, t.download_end * 1e3, t.parse_start * 1e3,
                          t.parse_end * 1e3, t.download_worker});
  }
  return f;
}

// Little's law, L = lambda x W: to keep the cores parsing, items must arrive at cores / parse_s a
// second, and each holds a worker for its parse, and for its download too where a download blocks
// its worker; L is how many workers that takes.
double LittlesLawWorkers(const ExecutorEntry& executor, const RunConfig& config, double parse_s, double cores) {
  double download_s = 0;
  for (const auto& d : config.downloads) {
    download_s += std::chrono::duration<double>(d).count() / config.workload.items;
  }
  const double hold_s = parse_s + ((executor.traits & kDownloadsHoldWorkers) ? download_s : 0.0);
  return cores / parse_s * hold_s;
}

harness::Repetition PipelineScenario::Measure(const harness::RunSpec& run, int) {
  const ExecutorEntry* executor = FindExecutor(run.model);
  if (executor == nullptr) throw std::invalid_argument("unknown pipeline model " + run.model);
  const RunConfig config = ConfigOf(run);
  const uint64_t expected = ExpectedChecksum(config.workload, config.units);
  std::vector<ItemTimes> times(static_cast<size_t>(config.workload.items));
  ResetPeakRss();
  UsageSampler sampler(static_cast<pid_t>(syscall(SYS_gettid)), executor->traits & kUsesProcesses);
  const double cpu_before = harness::ProcessCpuSeconds() + harness::ReapedChildrenCpuSeconds();
  Recorder recorder;
  executor->run(config, recorder, times);  // reaps every child it forked
  const double makespan = recorder.Now();
  const double cpu_with_sampler = harness::ProcessCpuSeconds() + harness::ReapedChildrenCpuSeconds() - cpu_before;
  sampler.Stop();
  const double cpu = std::max(0.0, cpu_with_sampler - sampler.cpu_seconds());
  ItemFigures f = FiguresOf(times, config);
  if (f.checksum != expected) {
    return harness::Repetition::Failed("checksum " + std::to_string(f.checksum) + " != " + std::to_string(expected) +
                                       ": an item was parsed twice or never");
  }
  const BoundInput in = BoundInputFor(*executor, config, f.parse_s, static_cast<int>(harness::AvailableCpus().size()));
  const Bound bound = LowerBound(in);
  harness::Repetition rep;
  rep.ok = true;
  const double items = config.workload.items;
  rep.iterations = static_cast<uint64_t>(items);
  rep.real_time_ns = makespan * 1e9 / items;
  rep.cpu_time_ns = cpu * 1e9 / items;
  auto& m = rep.metrics;
  m["items"] = config.workload.items;
  m["makespan_s"] = makespan;
  m["items_per_second"] = items / makespan;
  m["lower_bound_s"] = bound.value();
  m["efficiency"] = bound.value() / makespan;
  m["parse_ms"] = harness::Percentile(f.parse_ms, 50);  // what a parse took here: --parse, give or take the machine
  m["p50_ms"] = harness::Percentile(f.latency_ms, 50);
  m["p99_ms"] = harness::Percentile(f.latency_ms, 99);
  m["cpu_utilization"] = cpu / (makespan * in.cores);
  m["peak_threads"] = sampler.peak_threads();  // of the harness process: its main thread included
  m["peak_processes"] = 1 + sampler.peak_children();
  // The harness's peak plus, for process models, the largest sampled sum of its children's RSS
  // (pages shared with the parent counted in each, as for the echo servers).
  if (auto u = harness::ReadProcessUsage(getpid()))
    m["peak_rss_bytes"] = u->peak_rss_bytes + sampler.peak_children_rss();
  rep.detail["checksum"] = std::to_string(f.checksum);  // as a string: JSON readers lose 64-bit integers
  rep.detail["timeline"] = std::move(f.timeline);
  rep.detail["lower_bounds_s"] = {
      {"cpu", bound.cpu}, {"critical_path", bound.critical}, {"workers", bound.workers}, {"parse", f.parse_s}};
  rep.detail["littles_law_workers"] = LittlesLawWorkers(*executor, config, f.parse_s, in.cores);
  return rep;
}

// In a --workers sweep, each executor's (and mode's) smallest worker count whose median makespan is
// within 5% of its best, beside Little's law's prediction (the median over its repetitions).
std::string PipelineScenario::SummaryNotes(const nlohmann::json& document) const {
  struct Sweep {
    std::map<int, double> makespan;  // workers -> median makespan
    std::vector<double> little;
  };
  std::map<std::string, Sweep> sweeps;  // "model mode"
  std::set<std::string> with_median;    // runs that have a median entry (else their one repetition)
  for (const auto& e : document["benchmarks"]) {
    if (e.value("aggregate_name", "") == "median") with_median.insert(e.value("run_name", ""));
  }
  for (const auto& e : document["benchmarks"]) {
    if (e.value("scenario", "") != "pipeline" || e.value("status", "") != "ok" || !e["params"].contains("workers"))
      continue;
    const auto& p = e["params"];
    Sweep& sweep = sweeps[e.value("model", "") + (p.contains("mode") ? " " + p["mode"].get<std::string>() : "")];
    const bool iteration = e["run_type"] == "iteration";
    if (iteration && e.contains("littles_law_workers")) sweep.little.push_back(e["littles_law_workers"]);
    const bool row =
        e.value("aggregate_name", "") == "median" || (iteration && !with_median.count(e.value("run_name", "")));
    if (row && e.contains("makespan_s")) sweep.makespan[p["workers"].get<int>()] = e["makespan_s"].get<double>();
  }
  std::string out;
  for (const auto& [key, sweep] : sweeps) {
    if (sweep.makespan.size() < 2) continue;
    double best = 1e300;
    int best_at = 0;
    for (const auto& [w, m] : sweep.makespan) {
      if (m < best) std::tie(best, best_at) = std::pair{m, w};
    }
    int pick = best_at;
    for (const auto& [w, m] : sweep.makespan) {
      if (m <= 1.05 * best) {
        pick = w;
        break;
      }
    }
    out += fmt::format("  {}: {} workers are within 5% of the best makespan ({:.3f} s at {}); Little's law: {:.0f}\n",
                       key, pick, best, best_at, sweep.little.empty() ? 0.0 : harness::Median(sweep.little));
  }
  return out.empty() ? out : "\npool size (pipeline, --workers sweep)\n" + out;
}

}  // namespace

HARNESS_REGISTER(harness::ScenarioEntry, std::make_unique<PipelineScenario>());

}  // namespace pipeline
