// `serve`: one server of a scenario with a client, in the foreground until SIGINT or SIGTERM,
// optionally pinned and sampling its own usage (`--usage`, harness/server_usage.h). Its flags are
// the server's parameters as the scenarios declare them (Scenario::server_params()).
#include <map>
#include <memory>
#include <set>

#include "harness/command.h"
#include "harness/params.h"
#include "harness/placement.h"
#include "harness/scenario.h"
#include "harness/server_usage.h"

namespace harness {
namespace {

class ServeCommand final : public Command {
 public:
  std::string name() const override { return "serve"; }
  std::string help() const override { return "run one server in the foreground until SIGINT/SIGTERM"; }

  void Declare(CLI::App& app) override {
    app.add_option("--scenario", scenario_, "scenario (default: the first with a server)");
    app.add_option("--model", model_, "model")->required();
    app.add_option("--listen", listen_, "address to listen on, HOST:PORT (port 0: any)");
    std::set<std::string> declared;
    for (const auto& s : Scenarios()) {
      if (!s->has_client()) continue;
      for (const auto& p : s->params()) {
        const auto takes = s->server_params();
        if (std::find(takes.begin(), takes.end(), p.name) == takes.end() || !declared.insert(p.name).second) continue;
        app.add_option_function<std::string>(
            "--" + p.name, [this, name = p.name](const std::string& v) { params_[name] = v; }, p.help);
      }
    }
    app.add_option("--server-cpus", cpus_, "pin the server (its threads and children) to these CPUs, e.g. 0");
    app.add_option("--usage", usage_,
                   "sample the server's CPU, peak memory, threads and processes every 100 ms into this file (for merge "
                   "--server-usage, when the loads run elsewhere)");
  }

  int Execute(const CLI::App&, const std::string&) override {
    if (const auto clients = ClientScenarioNames(); scenario_.empty() && !clients.empty()) scenario_ = clients.front();
    Scenario* scenario = FindScenario(scenario_);
    if (scenario == nullptr) throw UsageError("unknown scenario '" + scenario_ + "' (see: list)");
    ServeOptions options{model_, FlagValue("--listen", [&] { return ParseEndpoint(listen_, true); }), params_, {}};
    if (!cpus_.empty()) {  // before the server makes any thread or child
      FlagValue("--server-cpus", [&] {
        PinThisThread(ParseCpuList(cpus_));
        return 0;
      });
    }
    std::unique_ptr<UsageLog> usage_log;  // sampled until Serve returns
    if (!usage_.empty()) {
      usage_log = FlagValue("--usage", [&] { return std::make_unique<UsageLog>(UserPath(usage_)); });
      options.on_listening = [&](const std::string& address) { usage_log->Start(model_, address); };
    }
    return scenario->Serve(options);
  }

 private:
  std::string scenario_, model_, listen_ = "127.0.0.1:0", cpus_, usage_;
  std::map<std::string, std::string> params_;
};

}  // namespace

HARNESS_REGISTER(CommandEntry, std::make_unique<ServeCommand>());

}  // namespace harness
