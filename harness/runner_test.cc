#include "harness/runner.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace harness {
namespace {

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
  EXPECT_EQ(RunAll(runs, writer), 1);
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
  EXPECT_EQ(RunAll(runs, writer), 0);
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
  EXPECT_EQ(RunAll(runs, writer), 1);
  const auto& e = writer.document()["benchmarks"][0];
  EXPECT_EQ(e["status"], "failed");
  EXPECT_EQ(e["error"], "metric 'gizmos' is not declared by scenario undeclared");
  EXPECT_FALSE(e.contains("gizmos"));
}

TEST(RunnerTest, AModelNoSelectedScenarioHasIsAnError) {
  Options options;
  options.models = {"nope"};
  EXPECT_THROW(PlanAll({"throwing"}, options), std::invalid_argument);
}

}  // namespace
}  // namespace harness
