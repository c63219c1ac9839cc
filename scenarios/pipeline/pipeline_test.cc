#include <gtest/gtest.h>

#include "harness/scenario.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "harness/process_usage.h"
#include "scenarios/pipeline/executor.h"
#include "scenarios/pipeline/lower_bound.h"
#include "scenarios/pipeline/workload.h"

namespace pipeline {
namespace {

using namespace std::chrono_literals;

TEST(LowerBoundTest, TheLargestOfItsThreeBounds) {
  BoundInput in;
  in.download_s = {1, 2, 3, 1, 2, 3, 1, 2, 3};  // seed 002: 9 pages, 1-3 s, parse 1 s
  in.parse_s = 1;
  in.cores = 2;
  in.workers = 9;
  in.downloads_occupy_workers = true;
  Bound b = LowerBound(in);
  EXPECT_DOUBLE_EQ(b.cpu, 5.5);     // nothing to parse for 1 s, then 9 s of parsing on 2 cores
  EXPECT_DOUBLE_EQ(b.critical, 4);  // the 3 s download and its parse
  EXPECT_DOUBLE_EQ(b.workers, 3);   // 27 s of work over 9 workers
  EXPECT_DOUBLE_EQ(b.value(), 5.5);
  in.workers = 1;  // sequential: the sum of all work
  EXPECT_DOUBLE_EQ(LowerBound(in).value(), 27);
  in.workers = 0;  // unbounded threads, downloads hold none
  in.downloads_occupy_workers = false;
  b = LowerBound(in);
  EXPECT_DOUBLE_EQ(b.workers, 0);
  EXPECT_DOUBLE_EQ(b.value(), 5.5);
  in.one_parser = true;  // a decoupled process model: the parent parses all 9 pages
  EXPECT_DOUBLE_EQ(LowerBound(in).cpu, 10);
  in.workers = 1;  // ... and a worker holds a page only while it downloads
  in.downloads_occupy_workers = true;
  EXPECT_DOUBLE_EQ(LowerBound(in).workers, 18);
  in.workers = 0;
  in.downloads_occupy_workers = false;
  in.one_parser = false;
  in.download_s = {1, 1, 1, 1, 1, 1, 1, 1, 10};  // a late page: its own download and parse bind
  EXPECT_DOUBLE_EQ(LowerBound(in).cpu, 10.5);
  EXPECT_DOUBLE_EQ(LowerBound(in).value(), 11);
}

TEST(WorkloadTest, RepeatableAndWithinItsDistribution) {
  Workload w;
  w.items = 50;
  const auto a = DownloadTimes(w), b = DownloadTimes(w);
  EXPECT_EQ(a, b);
  for (auto d : a) {
    EXPECT_GE(d, w.download_min);
    EXPECT_LE(d, w.download_max);
  }
  w.seed = 2;
  EXPECT_NE(DownloadTimes(w), a);
  EXPECT_EQ(Parse(Page(w, 3), 1000), Parse(Page(w, 3), 1000));
  EXPECT_NE(Parse(Page(w, 3), 1000), Parse(Page(w, 4), 1000));
  EXPECT_GE(UnitsFor(1ms), 1u);
}

struct Case {
  std::string executor;
  bool decoupled;
};

class ExecutorTest : public ::testing::TestWithParam<Case> {};

TEST_P(ExecutorTest, ParsesEveryItemOnceInOrderOfItsSteps) {
  const ExecutorEntry* entry = FindExecutor(GetParam().executor);
  ASSERT_NE(entry, nullptr);
  RunConfig config;
  config.workload.items = 12;
  config.workload.download_min = 1ms;
  config.workload.download_max = 3ms;
  config.workload.parse = 200us;
  config.workers = 3;
  config.decoupled = GetParam().decoupled;
  config.units = 1000;
  config.downloads = DownloadTimes(config.workload);
  std::vector<ItemTimes> times(12);
  Recorder recorder;
  entry->run(config, recorder, times);
  const double makespan = recorder.Now();

  uint64_t checksum = 0;
  std::set<int> workers;
  for (size_t i = 0; i < times.size(); ++i) {
    const ItemTimes& t = times[i];
    checksum += t.result;
    workers.insert(t.worker);
    EXPECT_LE(t.download_start, t.download_end) << i;
    EXPECT_GE(t.download_end - t.download_start, std::chrono::duration<double>(config.downloads[i]).count()) << i;
    EXPECT_LE(t.download_end, t.parse_start) << i;
    EXPECT_LE(t.parse_start, t.parse_end) << i;
    EXPECT_LE(t.parse_end, makespan) << i;
  }
  EXPECT_EQ(checksum, ExpectedChecksum(config.workload, config.units));
  if (entry->traits & kTakesWorkers) {
    EXPECT_LE(workers.size(), 3u);  // never more parsing threads than workers
  }
  if (entry->traits & kDownloadsHoldWorkers) {
    for (const ItemTimes& t : times) EXPECT_GE(t.download_worker, 0);  // a thread waited for it
  }

  // parse 0: units were set by hand, so only the downloads are known for sure
  const BoundInput in = BoundInputFor(*entry, config, 0, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_GE(makespan, LowerBound(in).value());  // no schedule beats the bound
}

std::vector<Case> AllExecutors() {
  std::vector<Case> cases;
  for (const auto& e : Executors()) {
    cases.push_back({e.name, false});
    if (e.traits & kHasModes) cases.push_back({e.name, true});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(EveryExecutor, ExecutorTest, ::testing::ValuesIn(AllExecutors()), [](const auto& info) {
  return info.param.executor + (info.param.decoupled ? "_decoupled" : "_coupled");
});

// A process model whose child is killed mid-run: the run fails naming the signal, and no child is
// left behind.
class KilledChildTest : public ::testing::TestWithParam<std::string> {};

TEST_P(KilledChildTest, FailsTheRunAndReapsTheRest) {
  const ExecutorEntry* entry = FindExecutor(GetParam());
  ASSERT_NE(entry, nullptr);
  RunConfig config;
  config.workload.items = 6;
  config.workload.download_min = config.workload.download_max = 300ms;
  config.workers = 3;
  config.units = 1;
  config.downloads = DownloadTimes(config.workload);
  std::vector<ItemTimes> times(6);
  std::atomic<pid_t> tid{0};
  std::string error;
  std::thread run([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    Recorder recorder;
    try {
      entry->run(config, recorder, times);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  std::vector<pid_t> children;
  for (int i = 0; i < 200 && children.size() < 3; ++i) {
    std::this_thread::sleep_for(5ms);
    if (tid != 0) children = harness::ChildrenOfThread(tid);
  }
  ASSERT_GE(children.size(), 3u);
  kill(children[0], SIGKILL);
  const pid_t run_tid = tid;
  run.join();
  EXPECT_NE(error.find("killed by"), std::string::npos) << error;
  for (pid_t pid : children) EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1) << pid << " was not reaped";
  EXPECT_TRUE(harness::ChildrenOfThread(run_tid).empty());
}

INSTANTIATE_TEST_SUITE_P(ProcessModels, KilledChildTest, ::testing::Values("processes", "process_pool"));

// The summary's pool-size line: the smallest worker count within 5% of the best median makespan,
// with the median of Little's law's counts beside it; executors without a sweep say nothing.
TEST(PoolSize, TheSmallestPoolWithinFivePercentOfTheBest) {
  nlohmann::json doc = {{"benchmarks", nlohmann::json::array()}};
  for (const auto& [workers, makespan] :
       std::vector<std::pair<int, double>>{{1, 2.0}, {8, 0.3}, {32, 0.105}, {64, 0.1}, {128, 0.12}}) {
    const std::string name = "pipeline/thread_pool/workers:" + std::to_string(workers);
    const nlohmann::json params = {{"workers", workers}, {"mode", "coupled"}};
    doc["benchmarks"].push_back({{"scenario", "pipeline"},
                                 {"model", "thread_pool"},
                                 {"params", params},
                                 {"run_name", name},
                                 {"run_type", "iteration"},
                                 {"status", "ok"},
                                 {"makespan_s", makespan * 1.5},
                                 {"littles_law_workers", 42.0}});
    doc["benchmarks"].push_back({{"scenario", "pipeline"},
                                 {"model", "thread_pool"},
                                 {"params", params},
                                 {"run_name", name},
                                 {"run_type", "aggregate"},
                                 {"aggregate_name", "median"},
                                 {"status", "ok"},
                                 {"makespan_s", makespan}});
  }
  doc["benchmarks"].push_back({{"scenario", "pipeline"},
                               {"model", "sequential"},
                               {"params", {{"items", 10}}},
                               {"run_name", "pipeline/sequential"},
                               {"run_type", "iteration"},
                               {"status", "ok"},
                               {"makespan_s", 2.0}});
  const harness::Scenario* pipeline = harness::FindScenario("pipeline");
  ASSERT_NE(pipeline, nullptr);
  const std::string notes = pipeline->SummaryNotes(doc);
  EXPECT_NE(notes.find("thread_pool coupled: 32 workers are within 5% of the best makespan (0.100 s at 64); "
                       "Little's law: 42"),
            std::string::npos)
      << notes;
  EXPECT_EQ(notes.find("sequential"), std::string::npos) << notes;
}

}  // namespace
}  // namespace pipeline
