// `run` (and the default suite, with no command): measure scenarios x models x parameters.
#include <iostream>

#include "harness/command.h"
#include "harness/params.h"
#include "harness/run_flags.h"

namespace harness {
namespace {

std::vector<std::string> AllScenarioNames() {
  std::vector<std::string> names;
  for (const auto& s : Scenarios()) names.push_back(s->name());
  return names;
}

class RunCommand final : public Command {
 public:
  std::string name() const override { return "run"; }
  std::string help() const override { return "measure scenarios x models x parameters"; }

  void Declare(CLI::App& app) override {
    AddRunFlags(&app, flags_, true);
    app.add_flag("--dry-run", dry_run_, "print the runs the flags select, one name a line, and measure nothing");
    app.allow_extras();  // --benchmark_* flags go to Google Benchmark (scenario micro)
  }

  int Execute(const CLI::App& app, const std::string& command_line) override {
    Options options = ToOptions(flags_);
    for (const std::string& extra : app.remaining()) {
      if (extra.rfind("--benchmark_", 0) != 0) throw UsageError("unexpected argument '" + extra + "' (see --help)");
      options.passthrough.push_back(extra);
    }
    const auto scenarios = flags_.scenarios.empty() ? AllScenarioNames() : SplitList(flags_.scenarios);
    auto runs = PlanAll(scenarios, options);
    if (dry_run_) {
      for (const auto& r : runs) std::cout << r.spec.name << "\n";
      return 0;
    }
    const std::string out = flags_.out.empty() ? DefaultOut() : UserPath(flags_.out);
    return ExecuteRuns(runs, out, options.profile, command_line);
  }

 private:
  RunFlags flags_;
  bool dry_run_ = false;
};

}  // namespace

HARNESS_REGISTER(CommandEntry, std::make_unique<RunCommand>());

}  // namespace harness
