// `merge`: one results file from several (harness/merge.h): runs of concurrent `load`s of one
// server combine, charged with the server's CPU when its usage log is given.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>

#include "harness/command.h"
#include "harness/merge.h"
#include "harness/results.h"
#include "harness/runner.h"

namespace harness {
namespace {

// The input files, each read once: one file by two names (a hard link) is still one file.
std::vector<ResultsFile> ReadInputs(const std::vector<std::string>& inputs) {
  std::vector<ResultsFile> files;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const std::string& path : inputs) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw UsageError(path + ": cannot read: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw UsageError(path + ": not a regular file");
    if (!seen.insert({st.st_dev, st.st_ino}).second)
      throw UsageError(path + ": given twice (it would be counted twice)");
    std::ifstream in(path);
    if (!in) throw UsageError(path + ": cannot read");
    try {
      files.push_back({path, nlohmann::json::parse(in)});
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(path + ": not JSON (" + std::string(e.what()) + ")");
    }
  }
  return files;
}

// Writes the merged document; returns false (having said where it went) when it fell back.
bool Write(const nlohmann::json& merged, const std::string& out_path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(out_path).parent_path(), ec);
  std::string written_to = out_path;
  try {
    ResultsWriter writer(out_path, merged["context"]);
    writer.AddAll(merged["benchmarks"].get<std::vector<nlohmann::json>>());
    written_to = writer.path();
  } catch (const std::runtime_error& e) {
    throw UsageError(std::string("--out: ") + e.what());
  }
  if (written_to == out_path) return true;
  std::cerr << "harness: error: the merged file could not be written to " << out_path << "; it is in " << written_to
            << "\n";
  return false;
}

class MergeCommand final : public Command {
 public:
  std::string name() const override { return "merge"; }
  std::string help() const override { return "merge result files; runs of concurrent `load`s of one server combine"; }

  void Declare(CLI::App& app) override {
    app.add_option("files", inputs_, "results files")->required();
    app.add_option("--out", out_, "merged file (default: results/merged.json in the workspace)");
    app.add_option("--server-usage", server_usage_,
                   "the server's usage log (serve --usage): charge each merged repetition with its CPU");
  }

  int Execute(const CLI::App&, const std::string& command_line) override {
    std::optional<ServerUsage> usage;
    if (!server_usage_.empty()) {
      const std::string path = UserPath(server_usage_);
      usage = FlagValue("--server-usage", [&] { return ServerUsage{path, ReadUsageLog(path)}; });
    }
    std::vector<std::string> paths;
    for (const auto& f : inputs_) paths.push_back(UserPath(f));
    const std::vector<ResultsFile> files = ReadInputs(paths);
    nlohmann::json merged;
    try {
      merged = MergeResults(files, command_line, usage ? &*usage : nullptr);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(std::string("merge: an entry lacks a field a result has: ") + e.what());
    }
    const std::string out = out_.empty() ? DefaultOut("merged.json") : UserPath(out_);
    if (!Write(merged, out)) return kExitFailedRuns;
    int failed = 0;  // merged repetitions that cannot stand (a part failed, or the loads were apart)
    for (const auto& e : merged["benchmarks"]) {
      if (e.value("run_type", "") != "iteration" || !e["params"].contains("target")) continue;
      if (e.value("status", "") != "ok") ++failed;
    }
    std::cout << SummaryTable(merged) << "\nresults: " << out << "\n";
    return failed ? kExitFailedRuns : 0;
  }

 private:
  std::vector<std::string> inputs_;
  std::string out_, server_usage_;
};

}  // namespace

HARNESS_REGISTER(CommandEntry, std::make_unique<MergeCommand>());

}  // namespace harness
