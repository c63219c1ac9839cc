#include "harness/results.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace harness {
namespace {

RunSpec Spec() {
  RunSpec run;
  run.scenario = "made_up";
  run.model = "asio";
  run.params = {{"connections", 10}, {"size", 64}};
  run.name = RunName(run.scenario, run.model, run.params);
  run.repetitions = 3;
  return run;
}

Repetition Ok(double real_time, double rate) {
  Repetition r;
  r.ok = true;
  r.iterations = 100;
  r.real_time_ns = real_time;
  r.cpu_time_ns = real_time / 2;
  r.metrics["msgs_per_second"] = rate;
  return r;
}

TEST(ResultsTest, NamesFollowScenarioModelParams) { EXPECT_EQ(Spec().name, "made_up/asio/connections:10/size:64"); }

TEST(ResultsTest, IterationEntryHasGoogleBenchmarkAndHarnessFields) {
  const nlohmann::json e = IterationEntry(Spec(), Ok(1000, 1e6), 1, 0, 2);
  EXPECT_EQ(e["name"], "made_up/asio/connections:10/size:64");
  EXPECT_EQ(e["run_type"], "iteration");
  EXPECT_EQ(e["repetition_index"], 1);
  EXPECT_EQ(e["per_family_instance_index"], 2);
  EXPECT_EQ(e["time_unit"], "ns");
  EXPECT_EQ(e["real_time"], 1000);
  EXPECT_EQ(e["cpu_time"], 500);
  EXPECT_EQ(e["status"], "ok");
  EXPECT_EQ(e["msgs_per_second"], 1e6);
  EXPECT_EQ(e["params"]["connections"], 10);
}

TEST(ResultsTest, FailedEntryCarriesTheErrorAndNoFigures) {
  const nlohmann::json e = IterationEntry(Spec(), Repetition::Failed("server died"), 0, 0, 0);
  EXPECT_EQ(e["status"], "failed");
  EXPECT_EQ(e["error"], "server died");
  EXPECT_EQ(e["error_occurred"], true);
  EXPECT_FALSE(e.contains("real_time"));
  EXPECT_FALSE(e.contains("msgs_per_second"));
  // A failed capacity search keeps its steps, which say why it failed; nothing else of its detail.
  Repetition search = Repetition::Failed("no rate met p99:2ms");
  search.detail["steps"] = nlohmann::json::array({{{"offered", 1000}, {"verdict", "p99 9000 us > 2000 us"}}});
  search.detail["noise"] = {{"noisy", false}};
  const nlohmann::json f = IterationEntry(Spec(), search, 0, 0, 0);
  EXPECT_EQ(f["steps"], search.detail["steps"]);
  EXPECT_FALSE(f.contains("noise"));
  // One that noise stopped, which the runner measures again, says so, and how much noise there was.
  search.detail["noise"] = {{"noisy", true}};
  search.detail["spoiled"] = "stopped by noise: 6 of 6 windows at 4000 msgs/s lost their CPUs";
  search.detail["excluded"] = search.detail["spoiled"];
  const nlohmann::json g = IterationEntry(Spec(), search, 0, 0, 0);
  for (const char* key : {"noise", "spoiled", "excluded"}) EXPECT_EQ(g[key], search.detail[key]) << key;
  EXPECT_EQ(g["status"], "failed");
}

// msgs_per_second aggregated as declared; a histogram-like figure declared not to aggregate.
MetricSet Declared() {
  MetricSet set;
  for (const Metric& m : CoreMetrics()) set.emplace(m.key, m);
  set.emplace("msgs_per_second", Metric{.key = "msgs_per_second", .better = Better::kHigher});
  set.emplace("spread", Metric{.key = "spread", .aggregate = Aggregation::kNone});
  return set;
}

TEST(ResultsTest, AggregatesOverOkRepetitions) {
  std::vector<Repetition> reps = {Ok(100, 10), Ok(300, 30), Repetition::Failed("x"), Ok(200, 20)};
  for (auto& r : reps) {
    if (r.ok) r.metrics["spread"] = 1;
  }
  const auto entries = AggregateEntries(Spec(), reps, 0, 0, Declared());
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0]["name"], "made_up/asio/connections:10/size:64_mean");
  EXPECT_EQ(entries[0]["aggregate_name"], "mean");
  EXPECT_DOUBLE_EQ(entries[0]["real_time"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(entries[1]["msgs_per_second"].get<double>(), 20);  // median
  EXPECT_DOUBLE_EQ(entries[2]["real_time"].get<double>(), 100);       // stddev
  EXPECT_DOUBLE_EQ(entries[3]["real_time"].get<double>(), 0.5);       // cv
  EXPECT_EQ(entries[3]["aggregate_unit"], "percentage");
  EXPECT_EQ(entries[0]["failed_repetitions"], 1);
  EXPECT_FALSE(entries[1].contains("spread"));  // declared Aggregation::kNone
  EXPECT_TRUE(AggregateEntries(Spec(), {Repetition::Failed("x")}, 0, 0, Declared()).empty());
}

TEST(ResultsTest, WriterRewritesAWholeValidFileAfterEveryEntry) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/results_test.json";
  ResultsWriter writer(path, MakeContext("harness run", "smoke"));
  for (int i = 0; i < 3; ++i) {
    writer.Add(IterationEntry(Spec(), Ok(100, 10), i, 0, 0));
    std::ifstream in(path);
    const nlohmann::json doc = nlohmann::json::parse(in);
    EXPECT_EQ(doc["benchmarks"].size(), static_cast<size_t>(i + 1));
    EXPECT_EQ(doc["context"]["profile"], "smoke");
    EXPECT_EQ(doc["context"]["schema_version"], kSchemaVersion);
  }
  EXPECT_THROW(ResultsWriter("/nonexistent-dir/x.json", {}), std::runtime_error);
}

std::string TempDir() {
  std::string pattern = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/outXXXXXX";
  return mkdtemp(pattern.data());
}

TEST(OutputFileTest, ReplacesWholeLeavesNoTemporaryAndReleasesItsLock) {
  const std::string dir = TempDir(), path = dir + "/r.json";
  {
    OutputFile out(path);
    out.Write("one");
    out.Write("two");
    EXPECT_THROW(OutputFile second(path), std::runtime_error);  // a second writer of the same file
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "two");
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
  EXPECT_NO_THROW(OutputFile again(path));
}

TEST(OutputFileTest, FallsBackToANamedFileWhenTheDirectoryGoes) {
  const std::string dir = TempDir(), fallback_dir = TempDir();
  setenv("TMPDIR", fallback_dir.c_str(), 1);
  OutputFile out(dir + "/r.json");
  out.Write("first");
  std::filesystem::remove_all(dir);
  out.Write("second");
  EXPECT_TRUE(out.fell_back());
  EXPECT_EQ(out.path().rfind(fallback_dir + "/harness-r-", 0), 0u) << out.path();
  std::ifstream in(out.path());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "second");
  unsetenv("TMPDIR");
}

}  // namespace
}  // namespace harness
