#include "harness/isolated.h"

#include <iostream>
#include <stdexcept>

#include "harness/child_process.h"
#include "harness/runner.h"
#include "harness/text.h"

namespace harness {

// What `harness measure` prints, field by field (not the ready-made entries: no isolated scenario
// measures with another tool).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Repetition, ok, error, iterations, real_time_ns, cpu_time_ns, metrics, detail,
                                   warnings, spoiled)

namespace {

nlohmann::json SpecToJson(const RunSpec& s) {
  nlohmann::json j = {{"scenario", s.scenario},
                      {"model", s.model},
                      {"params", s.params},
                      {"name", s.name},
                      {"duration_ns", s.duration.count()},
                      {"warmup_ns", s.warmup.count()},
                      {"repetitions", s.repetitions},
                      {"redo", s.redo},
                      {"noise_threshold", s.noise_threshold},
                      {"self_path", s.self_path},
                      {"plan_data", s.plan_data},
                      {"placement", s.placement.ToJson()}};
  if (s.target) j["target"] = *s.target;
  if (s.server_pid) j["server_pid"] = *s.server_pid;
  return j;
}

RunSpec SpecFromJson(const nlohmann::json& j) {
  RunSpec s;
  s.scenario = j.at("scenario");
  s.model = j.at("model");
  s.params = j.at("params");
  s.name = j.at("name");
  s.duration = Duration(j.at("duration_ns").get<Duration::rep>());
  s.warmup = Duration(j.at("warmup_ns").get<Duration::rep>());
  s.repetitions = j.at("repetitions");
  s.redo = j.at("redo");
  s.noise_threshold = j.at("noise_threshold");
  s.self_path = j.at("self_path");
  s.plan_data = j.at("plan_data");
  const auto& placement = j.at("placement");
  s.placement.mode = placement.at("mode");
  s.placement.server = ParseCpuList(placement.at("server_cpus"), false);
  s.placement.client = ParseCpuList(placement.at("client_cpus"), false);
  if (j.contains("target")) s.target = j["target"].get<std::string>();
  if (j.contains("server_pid")) s.server_pid = j["server_pid"].get<int>();
  return s;
}

}  // namespace

Repetition MeasureInChild(const RunSpec& spec, int repetition) {
  ChildProcess child(
      {spec.self_path, "measure", "--spec=" + SpecToJson(spec).dump(), "--repetition=" + std::to_string(repetition)},
      spec.placement.server);
  std::optional<std::string> line;
  while (!line && !g_interrupted) {
    line = child.ReadLine(std::chrono::milliseconds(200));
    if (!line && !child.Running()) {  // exited: what it wrote is in the pipe, which ends right after it
      line = child.ReadLine(std::chrono::seconds(2));
      break;
    }
  }
  const std::string how = child.Stop(std::chrono::seconds(2));
  if (!line) {
    if (g_interrupted) return Repetition::Failed("interrupted");
    const std::string tail = child.StderrTail();
    return Repetition::Failed("the measuring process " + how + (tail.empty() ? "" : ": " + tail));
  }
  try {
    return nlohmann::json::parse(*line).get<Repetition>();
  } catch (const nlohmann::json::exception& e) {
    return Repetition::Failed(std::string("the measuring process wrote no result: ") + e.what());
  }
}

int MeasureCommand(const std::string& spec_json, int repetition) {
  RunSpec spec;
  try {
    spec = SpecFromJson(nlohmann::json::parse(spec_json));
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("measure: bad --spec: ") + e.what());
  }
  Scenario* scenario = FindScenario(spec.scenario);
  if (scenario == nullptr) throw std::invalid_argument("measure: unknown scenario '" + spec.scenario + "'");
  Repetition rep;
  try {
    rep = scenario->Measure(spec, repetition);
  } catch (const std::exception& e) {
    rep = Repetition::Failed(e.what());
  }
  std::cout << JsonText(nlohmann::json(rep)) << std::endl;
  return 0;
}

}  // namespace harness
