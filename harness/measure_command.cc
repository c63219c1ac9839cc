// `measure` (hidden): the runner's child for a scenario that measures in a fresh process
// (harness/isolated.h).
#include "harness/command.h"
#include "harness/isolated.h"

namespace harness {
namespace {

class ChildMeasureCommand final : public Command {
 public:
  std::string name() const override { return "measure"; }
  std::string help() const override { return ""; }
  void Declare(CLI::App& app) override {
    app.add_option("--spec", spec_)->required();
    app.add_option("--repetition", repetition_);
  }
  int Execute(const CLI::App&, const std::string&) override { return MeasureCommand(spec_, repetition_); }

 private:
  std::string spec_;
  int repetition_ = 0;
};

}  // namespace

HARNESS_REGISTER(CommandEntry, std::make_unique<ChildMeasureCommand>());

}  // namespace harness
