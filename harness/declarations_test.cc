// A scenario made up here, with one metric made up here, gets everything a built-in one gets from
// its declaration alone: a summary column, a comparison in the declared direction (//plots:compare,
// run on the files written here), and a merge of concurrent loads by the declared rule. Nothing
// outside this file knows "widgets".
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "harness/merge.h"
#include "harness/results.h"
#include "harness/runner.h"
#include "harness/scenario.h"

namespace harness {
namespace {

// Lower is better, although the name says "per second": the direction must come from the
// declaration, not from a guess at the name.
Metric Widgets() {
  return {.key = "widgets_per_second",
          .unit = "1/s",
          .meaning = "widgets a second (fewer is better)",
          .better = Better::kLower,
          .merge = MergeRule::kSum,
          .label = "widgets/s",
          .format = ".1f",
          .always = true,
          .compared = true,
          .column = true};
}

class WidgetScenario final : public Scenario {
 public:
  std::string name() const override { return "widgets"; }
  std::string description() const override { return "made up for a test"; }
  std::vector<ModelInfo> models() const override { return {{"lathe", "test"}}; }
  std::vector<ParamInfo> params() const override { return {}; }
  Duration default_duration(const std::string&) const override { return Duration(1); }
  Duration default_warmup(const std::string&) const override { return Duration(0); }
  int default_repetitions(const std::string&) const override { return 5; }
  std::vector<Metric> metrics() const override { return {Widgets()}; }
  bool has_client() const override { return true; }
  bool merges() const override { return true; }

  std::vector<RunSpec> Plan(const Options& options) const override {
    RunSpec run;
    run.scenario = "widgets";
    run.model = "lathe";
    run.params = {{"benches", 2}};
    run.name = RunName(run.scenario, run.model, run.params);
    if (options.target) run.params["target"] = *options.target;
    run.target = options.target;
    run.repetitions = options.repetitions.value_or(5);
    return {run};
  }

  Repetition Measure(const RunSpec&, int index) override {
    Repetition r;
    r.ok = true;
    r.iterations = 1000;
    r.real_time_ns = 1e6;  // the same in every file: only the made-up metric changes
    r.cpu_time_ns = 5e5;
    r.metrics["widgets_per_second"] = level * (1 + 0.01 * (index % 3));
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    r.detail["window_unix_s"] = {now, now + 1 + 1e-3 * index};
    return r;
  }

  nlohmann::json MergedParams(const std::vector<nlohmann::json>& parts) const override {
    nlohmann::json merged = parts.front();
    merged["benches"] = 2 * parts.size();
    return merged;
  }
  void Recompute(const std::vector<const nlohmann::json*>&, Repetition& merged) const override {
    merged.real_time_ns = 1e9 / merged.metrics["widgets_per_second"].get<double>();
    merged.cpu_time_ns = 0;
  }

  static inline double level = 100;
};

WidgetScenario* TheScenario() {
  static WidgetScenario* const registered = [] {
    Registry<ScenarioEntry>::Add(std::make_unique<WidgetScenario>());
    return static_cast<WidgetScenario*>(FindScenario("widgets"));
  }();
  return registered;
}

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

// One `run` (or `load`, with a target) of the made-up scenario at `level` into a results file.
nlohmann::json RunInto(const std::string& path, double level, const std::optional<std::string>& target = {}) {
  WidgetScenario* scenario = TheScenario();  // registered on first use
  WidgetScenario::level = level;
  Options options;
  options.target = target;
  options.redo = 0;  // noise is not this test's subject: a redo would change which repetitions the median sees
  auto runs = PlanAll({"widgets"}, options);
  ResultsWriter writer(path, MakeContext("test", "quick", {scenario}));
  EXPECT_EQ(RunAll(runs, writer), 0);
  return writer.document();
}

TEST(DeclarationsTest, TheFileCarriesTheDeclaration) {
  const nlohmann::json doc = RunInto(TmpPath("carry.json"), 100);
  const auto& declared = doc["context"]["metrics"]["widgets_per_second"];
  EXPECT_EQ(declared["better"], "lower");
  EXPECT_EQ(declared["merge"], "sum");
  EXPECT_EQ(declared["display"]["label"], "widgets/s");
  EXPECT_EQ(doc["context"]["scenarios"]["widgets"]["columns"], nlohmann::json::array({"widgets_per_second"}));
  EXPECT_EQ(Metric::FromJson("widgets_per_second", declared).ToJson(), declared);  // read back exactly
  // Declared to aggregate: the median entry has it.
  bool median = false;
  for (const auto& e : doc["benchmarks"]) {
    if (e.value("aggregate_name", "") == "median") median = e.contains("widgets_per_second");
  }
  EXPECT_TRUE(median);
}

TEST(DeclarationsTest, ASummaryColumn) {
  const std::string table = SummaryTable(RunInto(TmpPath("summary.json"), 100));
  EXPECT_NE(table.find("widgets/s"), std::string::npos) << table;
  EXPECT_NE(table.find("101.0"), std::string::npos) << table;  // the median of 100, 101, 102, 100, 101
}

// Runs //plots:compare on two files; returns its exit status and what it printed (on stdout, and
// on stderr too when `with_errors`).
std::pair<int, std::string> Compare(const std::string& base, const std::string& fresh, bool with_errors = false) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string compare = std::string(srcdir ? srcdir : ".") + "/concurrency_harness/plots/compare";
  const std::string command =
      compare + " " + base + " " + fresh + " --format=json" + (with_errors ? " 2>&1" : " 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  while (pipe && fgets(buf, sizeof buf, pipe)) out += buf;
  const int status = pipe ? pclose(pipe) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string VerdictOf(const std::string& output, const std::string& metric_label) {
  if (output.empty() || output[0] != '[') return "(no table: " + output + ")";
  const auto rows = nlohmann::json::parse(output.substr(0, output.find("\n\n")));
  for (const auto& r : rows) {
    if (r["metric"] == metric_label) return r["verdict"];
  }
  return "(no row)";
}

void SetBetter(const std::string& path, const char* better) {
  std::ifstream in(path);
  nlohmann::json doc = nlohmann::json::parse(in);
  doc["context"]["metrics"]["widgets_per_second"]["better"] = better;
  std::ofstream(path) << doc.dump();
}

TEST(DeclarationsTest, AComparisonInTheDeclaredDirection) {
  const std::string base = TmpPath("base.json"), more = TmpPath("more.json");
  RunInto(base, 100);
  RunInto(more, 120);  // 20% more widgets: worse, as declared
  auto [status, out] = Compare(base, more);
  EXPECT_EQ(status, 1) << out;
  EXPECT_EQ(VerdictOf(out, "widgets/s"), "REGRESSION") << out;
  EXPECT_EQ(VerdictOf(out, "time/op ns"), "same") << out;

  // The same figures, declared the other way round in both files: an improvement.
  SetBetter(base, "higher");
  SetBetter(more, "higher");
  std::tie(status, out) = Compare(base, more);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(VerdictOf(out, "widgets/s"), "improvement") << out;

  // Declared differently by the two files: no comparison.
  SetBetter(base, "lower");
  std::tie(status, out) = Compare(base, more, true);
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("widgets_per_second"), std::string::npos) << out;
}

TEST(DeclarationsTest, AMergeByTheDeclaredRule) {
  const nlohmann::json a = RunInto(TmpPath("load_a.json"), 10, "127.0.0.1:1");
  const nlohmann::json b = RunInto(TmpPath("load_b.json"), 20, "127.0.0.2:1");
  const nlohmann::json merged = MergeResults({{"a.json", a}, {"b.json", b}}, "merge");
  int iterations = 0;
  for (const auto& e : merged["benchmarks"]) {
    if (e["run_type"] != "iteration") continue;
    const int r = e["repetition_index"];
    EXPECT_DOUBLE_EQ(e["widgets_per_second"].get<double>(), 30 * (1 + 0.01 * (r % 3))) << e.dump();  // kSum
    EXPECT_EQ(e["iterations"], 2000);                                                                // core: kSum
    EXPECT_DOUBLE_EQ(e["real_time"].get<double>(), 1e9 / e["widgets_per_second"].get<double>());     // Recompute
    EXPECT_EQ(e["params"]["benches"], 4);                                                            // MergedParams
    EXPECT_EQ(e["params"]["target"], "127.0.0.1:1,127.0.0.2:1");
    ++iterations;
  }
  EXPECT_EQ(iterations, 5);
  EXPECT_EQ(merged["context"]["metrics"]["widgets_per_second"]["merge"], "sum");

  // The rule is read from the files: declared as the largest of the parts, the merge takes that.
  nlohmann::json a_max = a, b_max = b;
  for (auto* doc : {&a_max, &b_max}) (*doc)["context"]["metrics"]["widgets_per_second"]["merge"] = "max";
  const nlohmann::json by_max = MergeResults({{"a.json", a_max}, {"b.json", b_max}}, "merge");
  EXPECT_DOUBLE_EQ(by_max["benchmarks"][0]["widgets_per_second"].get<double>(), 20);
  // Two files that declare the rule differently do not merge.
  EXPECT_THROW(MergeResults({{"a.json", a_max}, {"b.json", b}}, "merge"), std::invalid_argument);
}

// A scenario declaring a core metric again, or a key another declared differently, is refused.
class Redeclaring final : public Scenario {
 public:
  explicit Redeclaring(std::string name, Metric m) : name_(std::move(name)), metric_(std::move(m)) {}
  std::string name() const override { return name_; }
  std::string description() const override { return ""; }
  std::vector<ModelInfo> models() const override { return {}; }
  std::vector<ParamInfo> params() const override { return {}; }
  Duration default_duration(const std::string&) const override { return Duration(1); }
  Duration default_warmup(const std::string&) const override { return Duration(0); }
  int default_repetitions(const std::string&) const override { return 1; }
  std::vector<Metric> metrics() const override { return {metric_}; }
  std::vector<RunSpec> Plan(const Options&) const override { return {}; }
  Repetition Measure(const RunSpec&, int) override { return {}; }

 private:
  std::string name_;
  Metric metric_;
};

TEST(DeclarationsTest, ConflictingDeclarationsAreRefused) {
  Metric other = Widgets();
  other.better = Better::kHigher;
  other.merge = MergeRule::kDrop;
  const Redeclaring conflicting("gadgets", other), same("gizmos", Widgets()),
      core("cores", Metric{.key = "real_time", .unit = "s"});
  EXPECT_NO_THROW(CheckDeclarations({TheScenario(), &same}));
  EXPECT_THROW(CheckDeclarations({TheScenario(), &conflicting}), std::logic_error);
  EXPECT_THROW(CheckDeclarations({&core}), std::logic_error);
  Metric recompute = Widgets();
  recompute.key = "sprockets";
  recompute.merge = MergeRule::kRecompute;  // and the scenario does not merge
  const Redeclaring cannot("sprockets", recompute);
  EXPECT_THROW(CheckDeclarations({&cannot}), std::logic_error);
}

}  // namespace
}  // namespace harness
