// `list`: the scenarios, their models (and variants) and parameters with each profile's defaults.
#include <iostream>

#include "harness/command.h"
#include "harness/params.h"
#include "harness/scenario.h"

namespace harness {
namespace {

void ListParams(const Scenario& s) {
  std::cout << "  parameters (smoke | quick | full defaults):\n";
  for (const auto& p : s.params()) {
    std::cout << "    --" << p.name << "  " << p.help << "  [";
    const char* sep = "";
    for (const char* profile : {"smoke", "quick", "full"}) {
      auto it = p.by_profile.find(profile);
      std::cout << sep << (it == p.by_profile.end() ? "-" : it->second);
      sep = " | ";
    }
    std::cout << "]\n";
  }
}

class ListCommand final : public Command {
 public:
  std::string name() const override { return "list"; }
  std::string help() const override { return "scenarios, models, parameters, profiles"; }
  void Declare(CLI::App&) override {}

  int Execute(const CLI::App&, const std::string&) override {
    for (const auto& s : Scenarios()) {
      std::cout << s->name() << ": " << s->description() << "\n  models:\n";
      for (const auto& m : s->models()) std::cout << "    " << m.name << "  " << m.description << "\n";
      ListParams(*s);
      std::cout << "  duration, warmup, repetitions:";
      for (const char* profile : {"smoke", "quick", "full"}) {
        std::cout << "  " << profile << " " << FormatDuration(s->default_duration(profile)) << ", "
                  << FormatDuration(s->default_warmup(profile)) << ", " << s->default_repetitions(profile);
      }
      std::cout << "\n";
    }
    return 0;
  }
};

}  // namespace

HARNESS_REGISTER(CommandEntry, std::make_unique<ListCommand>());

}  // namespace harness
