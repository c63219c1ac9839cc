#include "harness/results.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <boost/version.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <stdexcept>
#include <thread>

#include "harness/placement.h"
#include "harness/process_usage.h"
#include "harness/stats.h"
#include "harness/text.h"

namespace harness {
namespace {

std::string FirstLineMatching(const char* path, const char* prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      const size_t colon = line.find(':');
      std::string value = colon == std::string::npos ? line : line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "";
}

std::string CommandOutput(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  char buf[256];
  std::string out;
  while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string GitCommit() {
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  const std::string dir = workspace ? workspace : ".";
  std::string commit = CommandOutput("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (commit.empty()) return "unknown";
  if (!CommandOutput("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null").empty()) {
    commit += "-dirty";
  }
  return commit;
}

std::string IsoNow() {
  char buf[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
  return buf;
}

nlohmann::json CommonFields(const RunSpec& run, int family_index, int instance_index) {
  return {{"family_index", family_index},
          {"per_family_instance_index", instance_index},
          {"run_name", run.name},
          {"repetitions", run.repetitions},
          {"threads", 1},
          {"time_unit", "ns"},
          {"scenario", run.scenario},
          {"model", run.model},
          {"params", run.params},
          {"placement", run.placement.ToJson()}};
}

std::string ReadLine(const std::string& path) {
  const std::string text = ReadProcFile(path);
  return text.substr(0, text.find('\n'));
}

}  // namespace

nlohmann::json Environment() {
  std::set<std::string> governors;
  nlohmann::json siblings = nlohmann::json::object();
  for (int cpu : AvailableCpus()) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu);
    if (std::string g = ReadLine(dir + "/cpufreq/scaling_governor"); !g.empty()) governors.insert(g);
    siblings[std::to_string(cpu)] = FormatCpuList(SmtSiblings(cpu));
  }
  std::string governor;
  for (const auto& g : governors) governor += (governor.empty() ? "" : ",") + g;
  nlohmann::json env = {{"available_cpus", FormatCpuList(AvailableCpus())},
                        {"smt_siblings", siblings},
                        {"isolated_cpus", ReadLine("/sys/devices/system/cpu/isolated")},
                        {"scaling_governor", governor.empty() ? nlohmann::json() : nlohmann::json(governor)}};
  if (governor.empty())
    env["scaling_note"] = "no cpufreq in /sys: the frequency policy is not visible here (a VM's host sets it)";
  // How an idle CPU waits: a guest's haltpoll driver polls up to guest_halt_poll_ns before it halts;
  // at 0 every idle halts at once and every wake-up is a VM exit (docs/methodology.md).
  const std::string idle = ReadLine("/sys/devices/system/cpu/cpuidle/current_driver");
  env["cpuidle_driver"] = idle.empty() ? nlohmann::json() : nlohmann::json(idle);
  const std::string poll = ReadLine("/sys/module/haltpoll/parameters/guest_halt_poll_ns");
  char* end = nullptr;
  const long long poll_ns = std::strtoll(poll.c_str(), &end, 10);
  env["guest_halt_poll_ns"] = poll.empty() || *end != '\0' ? nlohmann::json() : nlohmann::json(poll_ns);
  return env;
}

namespace {

bool ScalingEnabled(const nlohmann::json& env) {
  return env["scaling_governor"].is_string() && env["scaling_governor"] != "performance";
}

}  // namespace

nlohmann::json MakeContext(const std::string& command_line, const std::string& profile,
                           const std::vector<const Scenario*>& scenarios) {
  utsname uts{};
  uname(&uts);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  const std::string mhz = FirstLineMatching("/proc/cpuinfo", "cpu MHz");
  const std::string mem_kb = FirstLineMatching("/proc/meminfo", "MemTotal");
  const nlohmann::json env = Environment();
#ifdef NDEBUG
  const char* build_type = "release";
#else
  const char* build_type = "debug";
#endif
#ifdef __OPTIMIZE__
  const bool optimized = true;
#else
  const bool optimized = false;
#endif
  const nlohmann::json declarations = DeclarationsJson(scenarios);
  return {
      // Google Benchmark's fields.
      {"date", IsoNow()},
      {"host_name", host},
      {"executable", SelfExecutable()},
      {"num_cpus", std::thread::hardware_concurrency()},
      {"mhz_per_cpu", mhz.empty() ? 0 : static_cast<int>(std::stod(mhz))},
      {"cpu_scaling_enabled", ScalingEnabled(env)},
      {"caches", nlohmann::json::array()},
      {"load_avg", {load[0], load[1], load[2]}},
      {"library_build_type", build_type},
      // The harness's fields.
      {"schema_version", kSchemaVersion},
      {"harness", "concurrency-harness"},
      {"command_line", command_line},
      {"profile", profile},
      {"git_commit", GitCommit()},
      {"compiler", std::string("g++ ") + __VERSION__},
      {"boost_version", std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) +
                            "." + std::to_string(BOOST_VERSION % 100)},
      {"machine",
       {{"cpu_model", FirstLineMatching("/proc/cpuinfo", "model name")},
        {"cores", std::thread::hardware_concurrency()},
        {"kernel", std::string(uts.sysname) + " " + uts.release},
        {"arch", uts.machine},
        {"memory_bytes", mem_kb.empty() ? 0 : std::stoull(mem_kb) * 1024}}},
      {"optimized", optimized},
      {"environment", env},
      {"metrics", declarations["metrics"]},
      {"scenarios", declarations["scenarios"]},
      {"note",
       "client (load generator) and server run on the same machine; each entry's placement says on which CPUs "
       "(split: disjoint sets; shared: the scheduler's choice), and its noise what else ran on them"},
  };
}

nlohmann::json IterationEntry(const RunSpec& run, const Repetition& rep, int repetition_index, int family_index,
                              int instance_index) {
  nlohmann::json e = CommonFields(run, family_index, instance_index);
  e["name"] = run.name;
  e["run_type"] = "iteration";
  e["repetition_index"] = repetition_index;
  e["status"] = rep.ok ? "ok" : "failed";
  if (!rep.ok) {
    // Google Benchmark's own error fields; no figures are invented for a failed repetition.
    e["error"] = rep.error;
    e["error_occurred"] = true;
    e["error_message"] = rep.error;
    if (rep.detail.contains("steps")) e["steps"] = rep.detail["steps"];  // a failed capacity search's, why it failed
    if (rep.detail.contains("excluded")) {  // a failure the noise caused, measured again: why, and how much
      for (const char* key : {"noise", "spoiled", "excluded"}) {
        if (rep.detail.contains(key)) e[key] = rep.detail[key];
      }
    }
    return e;
  }
  e["iterations"] = rep.iterations;
  e["real_time"] = rep.real_time_ns;
  e["cpu_time"] = rep.cpu_time_ns;
  for (const auto& [key, value] : rep.metrics.items()) e[key] = value;
  for (const auto& [key, value] : rep.detail.items()) e[key] = value;
  if (!rep.warnings.empty()) e["warnings"] = rep.warnings;
  return e;
}

namespace {

// Every metric declared to aggregate, with the time columns, over the repetitions that have it.
std::map<std::string, std::vector<double>> Series(const std::vector<const Repetition*>& ok, const MetricSet& declared) {
  std::map<std::string, std::vector<double>> series;
  for (const Repetition* r : ok) {
    series["real_time"].push_back(r->real_time_ns);
    series["cpu_time"].push_back(r->cpu_time_ns);
    for (const auto& [key, value] : r->metrics.items()) {
      const auto it = declared.find(key);
      if (value.is_number() && it != declared.end() && it->second.aggregate == Aggregation::kStatistics) {
        series[key].push_back(value.get<double>());
      }
    }
  }
  return series;
}

// Why the repetitions `ok` were left out, by kind: what spoiled each (the text before ':') or a
// noisy neighbour, "load generator late in 2, noisy neighbour in 1". A run whose every repetition
// is spoiled alike (an open loop past what its load generator can send on time) says so here.
std::string WhyNotClean(const std::vector<const Repetition*>& ok) {
  std::map<std::string, int> kinds;
  for (const Repetition* r : ok) {
    if (r->detail.contains("spoiled")) {
      ++kinds[Repetition::KindOf(r->detail["spoiled"].get<std::string>())];
    } else if (r->detail.contains("noise") && r->detail["noise"].value("noisy", false)) {
      ++kinds["noisy neighbour"];
    }
  }
  std::string out;
  for (const auto& [kind, n] : kinds) out += (out.empty() ? "" : ", ") + kind + " in " + std::to_string(n);
  return out.empty() ? "none said why" : out;
}

// Warnings by kind (the text before ':'), counted over the repetitions aggregated, and what the
// noise guard left out.
nlohmann::json AggregateWarnings(const std::vector<const Repetition*>& ok, size_t clean, size_t noisy, size_t asked) {
  std::map<std::string, int> kinds;
  for (const Repetition* r : ok) {
    std::set<std::string> of_r;
    for (const auto& w : r->warnings) of_r.insert(Repetition::KindOf(w));
    for (const auto& k : of_r) ++kinds[k];
  }
  nlohmann::json warnings = nlohmann::json::array();
  for (const auto& [kind, n] : kinds) {
    warnings.push_back(kind + ": in " + std::to_string(n) + " of " + std::to_string(ok.size()) + " repetitions");
  }
  if (clean == 0) {
    warnings.push_back("noisy: no repetition was clean of noise or spoiling (" + WhyNotClean(ok) +
                       "); these figures are over " + std::to_string(ok.size()) +
                       " left-out ones (see each entry's noise and spoiled)");
  } else if (noisy > 0 && clean < asked) {
    warnings.push_back("noisy: " + std::to_string(clean) + " clean repetitions of " + std::to_string(asked) +
                       " asked; " + std::to_string(noisy) + " left out, the redo budget spent (--redo)");
  }
  return warnings;
}

}  // namespace

std::vector<nlohmann::json> AggregateEntries(const RunSpec& run, const std::vector<Repetition>& reps, int family_index,
                                             int instance_index, const MetricSet& declared) {
  // The ok repetitions the noise guard kept; if it kept none, the noisy ones, saying so.
  std::vector<const Repetition*> ok, noisy;
  for (const auto& r : reps) {
    if (r.ok) (r.detail.contains("excluded") ? noisy : ok).push_back(&r);
  }
  const size_t clean = ok.size();
  if (ok.empty()) ok = noisy;
  if (ok.empty()) return {};
  const std::map<std::string, std::vector<double>> series = Series(ok, declared);
  struct Aggregate {
    const char* name;
    double (*fn)(const std::vector<double>&);
    const char* unit;
  };
  static const Aggregate kAggregates[] = {
      {"mean", &Mean, "time"},
      {"median", [](const std::vector<double>& xs) { return Median(xs); }, "time"},
      {"stddev", &Stddev, "time"},
      {"cv", &CoefficientOfVariation, "percentage"},
  };
  const nlohmann::json warnings = AggregateWarnings(ok, clean, noisy.size(), static_cast<size_t>(run.repetitions));
  std::vector<nlohmann::json> entries;
  for (const Aggregate& a : kAggregates) {
    nlohmann::json e = CommonFields(run, family_index, instance_index);
    e["name"] = run.name + "_" + a.name;
    e["run_type"] = "aggregate";
    e["aggregate_name"] = a.name;
    e["aggregate_unit"] = a.unit;
    e["iterations"] = ok.size();
    e["status"] = "ok";
    e["failed_repetitions"] = reps.size() - clean - noisy.size();
    e["clean_repetitions"] = clean;
    e["noisy_repetitions"] = noisy.size();
    if (!warnings.empty()) e["warnings"] = warnings;
    for (const auto& [key, values] : series) {
      if (values.size() == ok.size()) e[key] = a.fn(values);
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

ResultsWriter::ResultsWriter(std::string path, nlohmann::json context)
    : file_(std::move(path)), doc_{{"context", std::move(context)}, {"benchmarks", nlohmann::json::array()}} {
  Flush();
}

void ResultsWriter::Add(nlohmann::json entry) {
  doc_["benchmarks"].push_back(std::move(entry));
  Flush();
}

void ResultsWriter::AddAll(std::vector<nlohmann::json> entries) {
  for (auto& e : entries) doc_["benchmarks"].push_back(std::move(e));
  Flush();
}

void ResultsWriter::Flush() {
  // The context pretty-printed, then one line per entry: a latency histogram has hundreds of
  // buckets, and one line per number would make files of megabytes that no diff can read.
  std::string text = "{\n\"context\": " + JsonText(doc_["context"], 2) + ",\n\"benchmarks\": [";
  const char* separator = "\n";
  for (const auto& entry : doc_["benchmarks"]) {
    text += separator + JsonText(entry);
    separator = ",\n";
  }
  text += "\n]\n}\n";
  file_.Write(text);
}

}  // namespace harness
