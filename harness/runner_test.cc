#include "harness/runner.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <stdexcept>

namespace harness {
namespace {

// A noise source that reports the next of `reports` for each repetition measured, a quiet one once
// they run out: noise on purpose, whatever the machine does meanwhile.
NoiseProbe ScriptedReports(std::vector<NoiseReport> reports) {
  auto next = std::make_shared<size_t>(0);
  return [reports, next](const CpuList&) -> NoiseWatch {
    NoiseReport r = *next < reports.size() ? reports[(*next)++] : NoiseReport{};
    r.seconds = 1;
    return [r] { return r; };
  };
}

// Each repetition's steal over the CPUs under test, a fraction.
NoiseProbe Scripted(const std::vector<double>& steal) {
  std::vector<NoiseReport> reports;
  for (const double fraction : steal) reports.push_back({.steal_fraction = fraction});
  return ScriptedReports(std::move(reports));
}

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
}

// What every scenario of these tests has alike: no parameters, no metrics of its own, 3 repetitions.
class TestScenario : public Scenario {
 public:
  std::string description() const override { return "test"; }
  std::vector<ParamInfo> params() const override { return {}; }
  Duration default_duration(const std::string&) const override { return Duration(1); }
  Duration default_warmup(const std::string&) const override { return Duration(0); }
  int default_repetitions(const std::string&) const override { return 3; }
  std::vector<Metric> metrics() const override { return {}; }
};

// A scenario whose second repetition throws, as a model that cannot start would.
class ThrowingScenario final : public TestScenario {
 public:
  std::string name() const override { return "throwing"; }
  std::vector<ModelInfo> models() const override { return {{"m", "test"}}; }
  std::vector<RunSpec> Plan(const Options&) const override {
    RunSpec run;
    run.scenario = "throwing";
    run.model = "m";
    run.name = "throwing/m";
    run.repetitions = 3;
    return {run};
  }
  Repetition Measure(const RunSpec&, int index) override {
    if (index == 1) throw std::runtime_error("server did not start: boom");
    Repetition r;
    r.ok = true;
    r.iterations = 10;
    r.real_time_ns = 100;
    return r;
  }
};

TEST(RunnerTest, AThrowingRepetitionIsRecordedAsFailedAndTheRunGoesOn) {
  Registry<ScenarioEntry>::Add(std::make_unique<ThrowingScenario>());
  auto runs = PlanAll({"throwing"}, Options{});
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/runner_test.json";
  ResultsWriter writer(path, MakeContext("test", "quick"));
  EXPECT_EQ(RunAll(runs, writer, nullptr, Scripted({})), 1);
  const auto& entries = writer.document()["benchmarks"];
  ASSERT_GE(entries.size(), 3u);
  EXPECT_EQ(entries[0]["status"], "ok");
  EXPECT_EQ(entries[1]["status"], "failed");
  EXPECT_EQ(entries[1]["error"], "server did not start: boom");
  EXPECT_EQ(entries[2]["status"], "ok");
  EXPECT_EQ(entries.back()["failed_repetitions"], 1);  // aggregates over the two that worked
}

// Two runs of three repetitions that record the order in which they were measured.
class OrderScenario final : public TestScenario {
 public:
  std::string name() const override { return "order"; }
  std::vector<ModelInfo> models() const override { return {{"a", "test"}, {"b", "test"}}; }
  std::vector<RunSpec> Plan(const Options&) const override {
    std::vector<RunSpec> runs;
    for (const char* model : {"a", "b"}) {
      RunSpec run;
      run.scenario = "order";
      run.model = model;
      run.name = std::string("order/") + model;
      run.repetitions = model[0] == 'a' ? 3 : 2;
      runs.push_back(run);
    }
    return runs;
  }
  Repetition Measure(const RunSpec& run, int index) override {
    measured.push_back(run.model + std::to_string(index));
    Repetition r;
    r.ok = true;
    r.iterations = 1;
    r.real_time_ns = 1;
    return r;
  }
  static inline std::vector<std::string> measured;
};

TEST(RunnerTest, RepetitionsAreInterleavedRoundRobinOverRuns) {
  Registry<ScenarioEntry>::Add(std::make_unique<OrderScenario>());
  auto runs = PlanAll({"order"}, Options{});
  ResultsWriter writer(
      std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/runner_order.json",
      MakeContext("test", "quick"));
  EXPECT_EQ(RunAll(runs, writer, nullptr, Scripted({})), 0);
  EXPECT_EQ(OrderScenario::measured, (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2"}));
  // Each run's aggregates follow its last repetition; every repetition records its noise.
  std::vector<std::string> names;
  for (const auto& e : writer.document()["benchmarks"]) {
    names.push_back(e["name"]);
    if (e["run_type"] == "iteration") {
      EXPECT_TRUE(e.contains("noise")) << e.dump();
    }
  }
  EXPECT_EQ(names[0], "order/a");
  EXPECT_EQ(names[1], "order/b");
  EXPECT_EQ(names[4], "order/b_mean");  // b's last repetition was the fourth measured
  EXPECT_EQ(names.back(), "order/a_cv");
}

// A scenario that reports a figure it never declared: the repetition fails, naming it.
class UndeclaredScenario final : public TestScenario {
 public:
  std::string name() const override { return "undeclared"; }
  std::vector<ModelInfo> models() const override { return {{"u", "test"}}; }
  std::vector<RunSpec> Plan(const Options&) const override {
    RunSpec run;
    run.scenario = "undeclared";
    run.model = "u";
    run.name = "undeclared/u";
    run.repetitions = 1;
    return {run};
  }
  Repetition Measure(const RunSpec&, int) override {
    Repetition r;
    r.ok = true;
    r.iterations = 1;
    r.metrics["gizmos"] = 3;
    return r;
  }
};

TEST(RunnerTest, AnUndeclaredMetricFailsTheRepetition) {
  Registry<ScenarioEntry>::Add(std::make_unique<UndeclaredScenario>());
  auto runs = PlanAll({"undeclared"}, Options{});
  ResultsWriter writer(
      std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/runner_undeclared.json",
      MakeContext("test", "quick"));
  EXPECT_EQ(RunAll(runs, writer, nullptr, Scripted({})), 1);
  const auto& e = writer.document()["benchmarks"][0];
  EXPECT_EQ(e["status"], "failed");
  EXPECT_EQ(e["error"], "metric 'gizmos' is not declared by scenario undeclared");
  EXPECT_FALSE(e.contains("gizmos"));
}

// Runs of 3 and 2 repetitions whose figure is 100 + the repetition's index, in the order measured.
class NoisyScenario final : public TestScenario {
 public:
  std::string name() const override { return "noisy"; }
  std::vector<ModelInfo> models() const override { return {{"a", "test"}, {"b", "test"}}; }
  std::vector<RunSpec> Plan(const Options& options) const override {
    std::vector<RunSpec> runs;
    for (const char* model : {"a", "b"}) {
      if (!options.models.empty() && options.models.front() != model) continue;
      RunSpec run;
      run.scenario = "noisy";
      run.model = model;
      run.name = std::string("noisy/") + model;
      run.repetitions = options.repetitions.value_or(model[0] == 'a' ? 3 : 2);
      run.target = options.target;
      runs.push_back(run);
    }
    return runs;
  }
  Repetition Measure(const RunSpec& run, int index) override {
    measured.push_back(run.model + std::to_string(index));
    if (fail.count(measured.back())) {  // as a capacity search noise stopped before anything met
      Repetition failed = Repetition::Failed("no capacity: the search stopped where 6 of 6 windows were noisy");
      failed.spoiled = "stopped by noise: 6 of 6 windows were noisy";
      failed.noise_judged = true;
      return failed;
    }
    Repetition r;
    r.ok = true;
    r.iterations = 1;
    r.real_time_ns = 100 + index;
    if (spoil.count(measured.back())) r.spoiled = "load generator late: its sends left 900 us after their time";
    r.noise_judged = judges_own_noise;
    return r;
  }
  static inline std::vector<std::string> measured;
  static inline std::set<std::string> spoil;    // repetitions ("a1") whose own instrument failed
  static inline bool judges_own_noise = false;  // as a capacity search, which redoes its noisy windows
  static inline std::set<std::string> fail;     // repetitions that fail, saying noise spoiled them
};

struct Measured {
  std::vector<nlohmann::json> iterations, medians;
  std::string summary;
};

Measured RunNoisy(const Options& options, const NoiseProbe& probe, const std::string& file,
                  const std::set<std::string>& spoil = {}, const std::set<std::string>& fail = {}, int failures = 0) {
  static const bool registered = [] {
    Registry<ScenarioEntry>::Add(std::make_unique<NoisyScenario>());
    return true;
  }();
  (void)registered;
  NoisyScenario::measured.clear();
  NoisyScenario::spoil = spoil;
  NoisyScenario::fail = fail;
  auto runs = PlanAll({"noisy"}, options);
  ResultsWriter writer(TempPath(file), MakeContext("test", "quick"));
  EXPECT_EQ(RunAll(runs, writer, nullptr, probe), failures);
  NoisyScenario::fail.clear();
  Measured out;
  out.summary = SummaryTable(writer.document());
  for (const auto& e : writer.document()["benchmarks"]) {
    if (e["run_type"] == "iteration") out.iterations.push_back(e);
    if (e.value("aggregate_name", "") == "median") out.medians.push_back(e);
  }
  return out;
}

TEST(RunnerTest, ANoisyRepetitionIsMeasuredAgainInALaterRoundAndLeftOutOfTheAggregates) {
  // The third measured (a1) lost 30% of its CPUs: a gets a fourth repetition after the others.
  const Measured m = RunNoisy(Options{}, Scripted({0, 0, 0.30, 0.01}), "runner_noisy.json");
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "a3"}));
  ASSERT_EQ(m.iterations.size(), 6u);
  for (const auto& e : m.iterations) {
    const bool a1 = e["name"] == "noisy/a" && e["repetition_index"] == 1;
    EXPECT_EQ(e.contains("excluded"), a1) << e.dump();
    EXPECT_EQ(e["noise"]["noisy"], a1) << e.dump();
  }
  EXPECT_NE(m.iterations[2]["excluded"].get<std::string>().find("30% of the CPUs under test taken"), std::string::npos);
  ASSERT_EQ(m.medians.size(), 2u);
  const auto& a = m.medians[1]["name"] == "noisy/a_median" ? m.medians[1] : m.medians[0];
  EXPECT_EQ(a["real_time"], 102.0);  // the median of 100, 102, 103: not 101, the noisy one
  EXPECT_EQ(a["iterations"], 3);
  EXPECT_EQ(a["clean_repetitions"], 3);
  EXPECT_EQ(a["noisy_repetitions"], 1);
  EXPECT_FALSE(a.contains("warnings")) << a.dump();
}

TEST(RunnerTest, ARepetitionItsScenarioFoundSpoiledIsMeasuredAgainLikeANoisyOne) {
  // No noise at all; a1's load generator was late.
  const Measured m = RunNoisy(Options{}, Scripted({}), "runner_spoiled.json", {"a1"});
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "a3"}));
  ASSERT_EQ(m.iterations.size(), 6u);
  for (const auto& e : m.iterations) {
    const bool a1 = e["name"] == "noisy/a" && e["repetition_index"] == 1;
    EXPECT_FALSE(e["noise"]["noisy"]) << e.dump();
    EXPECT_EQ(e.contains("spoiled"), a1) << e.dump();
    EXPECT_EQ(e.value("excluded", ""), a1 ? "load generator late: its sends left 900 us after their time" : "");
  }
  const auto& a = m.medians[1]["name"] == "noisy/a_median" ? m.medians[1] : m.medians[0];
  EXPECT_EQ(a["real_time"], 102.0);  // the median of 100, 102, 103: not 101, the spoiled one
  EXPECT_EQ(a["clean_repetitions"], 3);
}

TEST(RunnerTest, ARepetitionThatJudgedItsOwnNoiseIsMeasuredAgainOnlyIfSpoiled) {
  // As capacity searches: b0 lost 30% of its CPUs (its windows were redone within it), b1 says it
  // was spoiled (as noise that stopped a search says). Only b1 is measured again.
  Options options;
  options.models = {"b"};
  NoisyScenario::judges_own_noise = true;
  const Measured m = RunNoisy(options, Scripted({0.30, 0, 0, 0}), "runner_judged_own.json", {"b1"});
  NoisyScenario::judges_own_noise = false;
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  ASSERT_EQ(m.iterations.size(), 3u);
  EXPECT_TRUE(m.iterations[0]["noise"]["noisy"]);
  EXPECT_FALSE(m.iterations[0].contains("excluded"));
  EXPECT_EQ(m.iterations[1].value("excluded", ""), "load generator late: its sends left 900 us after their time");
  EXPECT_EQ(m.medians[0]["iterations"], 2);  // b0 and b2
  EXPECT_EQ(m.medians[0]["real_time"], 101.0);
}

TEST(RunnerTest, AFailureThatSaysNoiseCausedItIsMeasuredAgainAndIsNoFailureIfTheRedoStands) {
  Options options;
  options.models = {"b"};
  const Measured m = RunNoisy(options, Scripted({}), "runner_failed_noise.json", {}, {"b0"});
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  ASSERT_EQ(m.iterations.size(), 3u);
  EXPECT_EQ(m.iterations[0]["status"], "failed");
  EXPECT_EQ(m.iterations[0]["excluded"], "stopped by noise: 6 of 6 windows were noisy");
  EXPECT_EQ(m.medians[0]["real_time"], 101.5);  // b1 and b2
  EXPECT_EQ(m.summary.find("FAILED"), std::string::npos) << m.summary;
}

TEST(RunnerTest, AFailureThatSaysNoiseCausedItIsAFailurePastTheRedoBudget) {
  Options options;
  options.models = {"b"};
  options.redo = 1;
  const Measured m = RunNoisy(options, Scripted({}), "runner_failed_noise_twice.json", {}, {"b0", "b2"}, 1);
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  ASSERT_EQ(m.iterations.size(), 3u);
  EXPECT_TRUE(m.iterations[0].contains("excluded"));
  EXPECT_FALSE(m.iterations[2].contains("excluded"));
  EXPECT_EQ(m.iterations[2]["status"], "failed");
  const size_t failed = m.summary.find("FAILED (repetition 2): no capacity");
  EXPECT_NE(failed, std::string::npos) << m.summary;
  EXPECT_EQ(m.summary.find("FAILED", failed + 1), std::string::npos) << m.summary;  // one row, not two
}

TEST(RunnerTest, RedoZeroKeepsASpoiledRepetitionSayingSo) {
  Options options;
  options.models = {"b"};
  options.redo = 0;
  const Measured m = RunNoisy(options, Scripted({}), "runner_spoiled_kept.json", {"b0"});
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1"}));
  EXPECT_FALSE(m.iterations[0].contains("excluded"));
  EXPECT_EQ(m.iterations[0]["spoiled"], "load generator late: its sends left 900 us after their time");
  EXPECT_EQ(m.medians[0]["real_time"], 100.5);
  nlohmann::json doc = {{"context", MakeContext("test", "quick")}, {"benchmarks", m.iterations}};
  const std::string summary = SummaryTable(doc);
  EXPECT_NE(summary.find("spoiled: in 1 of 2 repetitions"), std::string::npos) << summary;
  EXPECT_NE(summary.find("; 1 kept (--redo=0)"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("left out"), std::string::npos) << summary;
}

TEST(RunnerTest, TheSummarySaysHowManyRepetitionsWereSpoiledAndLeftOut) {
  Options options;
  options.models = {"b"};
  const Measured m = RunNoisy(options, Scripted({}), "runner_spoiled_summary.json", {"b1"});
  nlohmann::json doc = {{"context", MakeContext("test", "quick")}, {"benchmarks", nlohmann::json::array()}};
  for (const auto& e : m.iterations) doc["benchmarks"].push_back(e);
  for (const auto& e : m.medians) doc["benchmarks"].push_back(e);
  const std::string summary = SummaryTable(doc);
  EXPECT_NE(summary.find("spoiled: in 1 of 3 repetitions the scenario found its own figures spoiled"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("1 left out of the medians and measured again"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("noisy neighbour"), std::string::npos) << summary;
}

TEST(RunnerTest, RedosStopAtTheBudgetAndTheAggregateSaysHowFewWereClean) {
  Options options;
  options.models = {"a"};
  options.redo = 1;
  // a0 noisy (redone as a3), a1 and a2 clean, a3 noisy again: no redo left.
  const Measured m = RunNoisy(options, Scripted({0.2, 0, 0, 0.2}), "runner_budget.json");
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"a0", "a1", "a2", "a3"}));
  ASSERT_EQ(m.medians.size(), 1u);
  EXPECT_EQ(m.medians[0]["clean_repetitions"], 2);
  EXPECT_EQ(m.medians[0]["noisy_repetitions"], 2);
  EXPECT_EQ(m.medians[0]["real_time"], 101.5);
  EXPECT_EQ(m.medians[0]["warnings"][0],
            "noisy: 2 clean repetitions of 3 asked; 2 left out, the redo budget spent (--redo)");
}

TEST(RunnerTest, WhenNothingIsCleanTheAggregatesAreOverTheNoisyOnesWithAWarning) {
  Options options;
  options.models = {"b"};
  options.redo = 1;
  const Measured m = RunNoisy(options, Scripted({0.2, 0.2, 0.2}), "runner_all_noisy.json");
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  ASSERT_EQ(m.medians.size(), 1u);
  EXPECT_EQ(m.medians[0]["clean_repetitions"], 0);
  EXPECT_EQ(m.medians[0]["iterations"], 3);
  EXPECT_NE(m.medians[0]["warnings"][0].get<std::string>().find("no repetition was clean of noise or spoiling "
                                                                "(noisy neighbour in 3)"),
            std::string::npos)
      << m.medians[0]["warnings"];
}

TEST(RunnerTest, WhenEveryRepetitionIsSpoiledTheAggregateSaysBy) {
  Options options;
  options.models = {"b"};
  options.redo = 1;
  // b0 spoiled (redone as b2), b1 noisy, b2 spoiled again: no clean one, two reasons.
  const Measured m = RunNoisy(options, Scripted({0, 0.2, 0}), "runner_all_spoiled.json", {"b0", "b2"});
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  ASSERT_EQ(m.medians.size(), 1u);
  EXPECT_EQ(m.medians[0]["clean_repetitions"], 0);
  EXPECT_NE(m.medians[0]["warnings"].dump().find("no repetition was clean of noise or spoiling (load generator late "
                                                 "in 2, noisy neighbour in 1); these figures are over 3"),
            std::string::npos)
      << m.medians[0]["warnings"];
}

TEST(RunnerTest, RedoZeroKeepsNoisyRepetitionsAsBefore) {
  Options options;
  options.models = {"b"};
  options.redo = 0;
  const Measured m = RunNoisy(options, Scripted({0.2, 0}), "runner_redo0.json");
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1"}));
  EXPECT_TRUE(m.iterations[0]["noise"]["noisy"]);
  EXPECT_FALSE(m.iterations[0].contains("excluded"));
  EXPECT_EQ(m.medians[0]["real_time"], 100.5);
}

TEST(RunnerTest, TheThresholdDecidesWhatIsNoisy) {
  Options options;
  options.models = {"b"};
  options.noise_threshold = 0.25;
  const Measured m = RunNoisy(options, Scripted({0.2, 0.3}), "runner_threshold.json");
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  EXPECT_FALSE(m.iterations[0]["noise"]["noisy"]);
  EXPECT_TRUE(m.iterations[1]["noise"]["noisy"]);
  EXPECT_EQ(m.iterations[1]["noise"]["threshold"], 0.25);
}

TEST(RunnerTest, OneCpuThatLostMoreThanTheThresholdMakesARepetitionNoisyThoughTheAverageDidNot) {
  Options options;
  options.models = {"b"};
  // 8% of CPU 0 went to another process, none of CPU 1: 4% of the two, under the 5% threshold.
  const NoiseReport one_cpu{
      .others_fraction = 0.04, .by_cpu = {{0, {.others = 0.08}}, {1, {}}}, .busiest = "spin (pid 7)"};
  const Measured m = RunNoisy(options, ScriptedReports({one_cpu}), "runner_one_cpu.json");
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  EXPECT_EQ(m.iterations[0]["noise"]["worst_cpu"], 0);
  EXPECT_EQ(m.iterations[0]["noise"]["worst_cpu_fraction"], 0.08);
  EXPECT_EQ(m.iterations[0]["excluded"],
            "noisy neighbour: CPU 0 lost 8% (the CPUs under test 4%: steal 0%, other processes 4%: spin (pid 7))");
}

TEST(RunnerTest, ALoadJudgesStealAloneForTheServerItDrivesIsAnotherProcess) {
  Options options;
  options.models = {"b"};
  options.target = "127.0.0.1:7";
  const NoiseReport server_busy{.others_fraction = 0.6, .by_cpu = {{0, {.others = 0.9}}, {1, {.others = 0.3}}}};
  const NoiseReport stolen{.steal_fraction = 0.1, .by_cpu = {{0, {.steal = 0.1}}, {1, {.steal = 0.1}}}};
  const Measured m = RunNoisy(options, ScriptedReports({server_busy, stolen}), "runner_load_noise.json");
  EXPECT_EQ(NoisyScenario::measured, (std::vector<std::string>{"b0", "b1", "b2"}));
  EXPECT_FALSE(m.iterations[0]["noise"]["noisy"]) << m.iterations[0].dump();
  EXPECT_EQ(m.iterations[0]["noise"]["others_judged"], false);
  EXPECT_EQ(m.iterations[0]["noise"]["others_fraction"], 0.6);  // still said
  EXPECT_TRUE(m.iterations[1]["noise"]["noisy"]);
  EXPECT_TRUE(m.iterations[1].contains("excluded"));
}

TEST(RunnerTest, AModelNoSelectedScenarioHasIsAnError) {
  Options options;
  options.models = {"nope"};
  EXPECT_THROW(PlanAll({"throwing"}, options), std::invalid_argument);
}

}  // namespace
}  // namespace harness
