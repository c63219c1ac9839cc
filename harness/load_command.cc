// `load`: the load generator of the scenarios with a client, against any server at --target (the
// harness's `serve` on another host, or anybody's), optionally started at a wall-clock time shared
// with loads on other hosts (`--start-at`), so that `merge` can combine them.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <optional>

#include "harness/command.h"
#include "harness/params.h"
#include "harness/run_flags.h"

namespace harness {
namespace {

// How late `load --start-at` may be and still start (the clocks of hosts differ a little).
constexpr double kLateStartS = 5;
// A start time further than this from now is a mistake (a time in ms, a stale script).
constexpr double kMostAheadS = 86400;

double UnixTimeOf(const std::string& at) {
  try {
    size_t used = 0;
    const double t = std::stod(at, &used);
    if (used == at.size() && std::isfinite(t)) return t;
  } catch (const std::exception&) {
  }
  throw UsageError("--start-at: not a UNIX time in seconds: '" + at + "'");
}

// `--start-at=UNIX_TIME [--start-every=DURATION]`: a time within a day of now and not past. Parsed
// before the target is probed, so a bad time is its own error. Without --start-every the period is
// left 0 for DefaultPeriod.
Schedule ParseSchedule(const std::string& at, const std::string& every) {
  Schedule schedule;
  const double now = UnixSeconds();
  schedule.start_unix = UnixTimeOf(at);
  if (std::abs(schedule.start_unix - now) > kMostAheadS) {
    throw UsageError(fmt::format("--start-at: {} is more than a day from now ({:.0f})", at, now));
  }
  // A start passed already would begin at once, apart from the loads it was meant to run with.
  if (schedule.start_unix < now - kLateStartS) {
    throw UsageError(
        fmt::format("--start-at: {} was {:.0f} s ago (now {:.0f}): the loads it was to start with have "
                    "begun",
                    at, now - schedule.start_unix, now));
  }
  if (!every.empty()) {
    schedule.period_s = FlagValue("--start-every", [&] {
      return std::chrono::duration<double>(ParseDuration(every, std::chrono::seconds(1))).count();
    });
  }
  return schedule;
}

// The default period leaves each repetition its warm-up, its window and 5 s for connecting and the
// extra warm-up a slow server takes.
double DefaultPeriod(const std::vector<PlannedRun>& runs) {
  double period = 0;
  for (const auto& run : runs) {
    period = std::max(period, std::chrono::duration<double>(run.spec.warmup + run.spec.duration).count() + 5);
  }
  return period;
}

std::string CheckName(const std::string& v) {
  const bool ok = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
  return ok ? std::string() : "letters, digits, _ - . only: '" + v + "'";
}

class LoadCommand final : public Command {
 public:
  std::string name() const override { return "load"; }
  std::string help() const override { return "drive a server at --target with a scenario's load generator"; }

  void Declare(CLI::App& app) override {
    app.add_option("--target", target_, "HOST:PORT of the server")->required();
    app.add_option("--server-pid", server_pid_, "also sample this local process's CPU, RSS, threads");
    app.add_option("--name", target_name_, "the server's model name in the results (default external)")
        ->check(CLI::Validator(CheckName, "NAME", "name"));
    app.add_option("--start-at", start_at_,
                   "UNIX time (seconds, wall clock) at which the first repetition starts; loads on other hosts "
                   "given the same time and flags measure together");
    app.add_option("--start-every", start_every_,
                   "with --start-at: repetition k starts at START + k x this (default: the longest warm-up + "
                   "duration + 5s)");
    AddRunFlags(&app, flags_, false);
  }

  int Execute(const CLI::App&, const std::string& command_line) override {
    Options options = ToOptions(flags_, true);
    options.target = FlagValue("--target", [&] { return ParseEndpoint(target_, false).ToString(); });
    options.target_name = target_name_;
    if (!server_pid_.empty()) {
      options.server_pid =
          FlagValue("--server-pid", [&] { return static_cast<int>(ParseCount(server_pid_, 1, 1 << 22)); });
    }
    std::optional<Schedule> schedule;
    if (!start_every_.empty() && start_at_.empty()) throw UsageError("--start-every: only with --start-at");
    if (!start_at_.empty()) {
      schedule = ParseSchedule(start_at_, start_every_);
      if (options.redo.value_or(0) > 0) throw UsageError("--redo: not with --start-at (the loads' slots would part)");
    }
    // Loads that run side by side are merged repetition k with repetition k: unless asked, none
    // inserts a repetition the others lack. Noise is still judged and said in each entry.
    options.redo = options.redo.value_or(0);
    auto runs = PlanAll(ClientScenarioNames(), options);
    if (schedule && schedule->period_s == 0) schedule->period_s = DefaultPeriod(runs);
    const std::string out = flags_.out.empty() ? DefaultOut() : UserPath(flags_.out);
    return ExecuteRuns(runs, out, options.profile, command_line, schedule ? &*schedule : nullptr);
  }

 private:
  RunFlags flags_;
  std::string target_, server_pid_, target_name_ = "external", start_at_, start_every_;
};

}  // namespace

HARNESS_REGISTER(CommandEntry, std::make_unique<LoadCommand>());

}  // namespace harness
