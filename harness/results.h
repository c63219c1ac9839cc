// Results in Google Benchmark's JSON format, with the harness's own fields riding along.
//
// The writer owns one output file (harness/output_file.h). Every Add*() is followed by Flush(),
// which rewrites the whole file atomically: a crash or Ctrl-C keeps every finished run and never
// leaves half a file.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/histogram.h"
#include "harness/output_file.h"
#include "harness/scenario.h"

namespace harness {

inline constexpr int kSchemaVersion = 1;

// Google Benchmark's context fields plus machine, compiler, Boost, git commit, command line, profile.
nlohmann::json MakeContext(const std::string& command_line, const std::string& profile);

// One iteration entry (run_type "iteration") for a repetition.
nlohmann::json IterationEntry(const RunSpec& run, const Repetition& rep, int repetition_index,
                              int family_index, int instance_index);
// mean, median, stddev and cv entries over the ok repetitions; empty when none is ok.
std::vector<nlohmann::json> AggregateEntries(const RunSpec& run, const std::vector<Repetition>& reps,
                                             int family_index, int instance_index);

// p50_us, p90_us, p99_us, p999_us, max_us and mean_us of a histogram of nanoseconds, into `metrics`.
void PutLatencyMetrics(const Histogram& ns, nlohmann::json& metrics);

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
