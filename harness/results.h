// Results in Google Benchmark's JSON format, with the harness's own fields riding along.
//
// The writer owns one output file (harness/output_file.h). Every Add*() is followed by Flush(),
// which rewrites the whole file atomically: a crash or Ctrl-C keeps every finished run and never
// leaves half a file.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/metrics.h"
#include "harness/output_file.h"
#include "harness/scenario.h"

namespace harness {

// 2: context.metrics and context.scenarios declare every figure (harness/metrics.h).
inline constexpr int kSchemaVersion = 2;

// What is known of the CPUs the harness may use, instead of what Google Benchmark's context
// fields would otherwise claim: the frequency governor where the kernel exposes one (a VM often
// does not: the host sets the clock), SMT siblings, CPUs isolated from the scheduler.
nlohmann::json Environment();

// Google Benchmark's context fields plus machine, compiler, Boost, git commit, command line, profile,
// and the declarations of the scenarios' metrics (`metrics`, `scenarios`: DeclarationsJson).
nlohmann::json MakeContext(const std::string& command_line, const std::string& profile,
                           const std::vector<const Scenario*>& scenarios = {});

// One iteration entry (run_type "iteration") for a repetition.
nlohmann::json IterationEntry(const RunSpec& run, const Repetition& rep, int repetition_index, int family_index,
                              int instance_index);
// mean, median, stddev and cv entries over the ok repetitions the noise guard did not exclude (over
// the excluded ones, with a warning, when it excluded all), of real_time, cpu_time and every metric
// declared Aggregation::kStatistics that each of them has; empty when none is ok. Each says how
// many were clean, noisy and failed; fewer clean than asked is a warning.
std::vector<nlohmann::json> AggregateEntries(const RunSpec& run, const std::vector<Repetition>& reps, int family_index,
                                             int instance_index, const MetricSet& declared);

class ResultsWriter {
 public:
  // Throws std::runtime_error when the path is refused or cannot be written (checked by a first
  // write); see OutputFile.
  ResultsWriter(std::string path, nlohmann::json context);
  void Add(nlohmann::json entry);
  // Appends every entry, then rewrites the file once (a repetition's ready-made entries, a run's
  // aggregates, a merged file): the whole file is rewritten per call, not per entry.
  void AddAll(std::vector<nlohmann::json> entries);
  void Flush();
  // Where the results are: the path asked for, or the fallback a failed write switched to.
  const std::string& path() const { return file_.path(); }
  bool fell_back() const { return file_.fell_back(); }
  const nlohmann::json& document() const { return doc_; }

 private:
  OutputFile file_;
  nlohmann::json doc_;
};

}  // namespace harness
