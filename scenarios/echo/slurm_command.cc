// `harness slurm`: echo's command for a Slurm cluster (slurm_script.h). It checks what the job will
// ask of serve and load here, before anything reaches the cluster (a bad flag is exit 2 now, not a
// failed job later); writes DIR/job.sh into a new or empty folder, prints it, and submits it with
// sbatch, run directly (no shell), unless --dry-run.
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "harness/command.h"
#include "harness/output_file.h"
#include "harness/process_usage.h"
#include "harness/run_flags.h"
#include "harness/runner.h"
#include "scenarios/echo/slurm_script.h"

namespace echo {
namespace {

using harness::UsageError;

// The flags each side of the job takes, as `serve` and `load` name them; transport, reply and work go
// to both (they must agree).
constexpr const char* kServeFlags[] = {"workers", "variant"};
constexpr const char* kBothFlags[] = {"transport", "reply", "work"};
constexpr const char* kLoadFlags[] = {"connections", "size",        "rate",          "duration",
                                      "warmup",      "repetitions", "client-threads"};

// A job's folder, new or empty: a used one holds another job's load-*.json, which the merge at the
// end of this job would count as its own.
void MakeFreshDirectory(const std::string& dir) {
  struct stat st {};
  if (lstat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw UsageError("--out: " + dir + " exists and is not a directory");
    std::error_code ec;
    if (!std::filesystem::is_empty(dir, ec) || ec) {
      throw UsageError("--out: " + dir +
                       " is not empty (another job's files would be merged into this one's); name a "
                       "new folder");
    }
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw UsageError("--out: cannot create " + dir + ": " + ec.message());
}

// Runs `argv` (no shell: its words reach the program as they are) and returns its exit status, 127
// when it cannot be started.
int Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) throw std::runtime_error(argv[0] + " ended by signal " + std::to_string(WTERMSIG(status)));
  return WEXITSTATUS(status);
}

// Plans the job's runs as serve and load would, for their errors only.
void CheckAsServeAndLoad(const SlurmJob& job) {
  harness::Options check;
  check.models = {job.model};
  check.params = job.serve;
  for (const auto& [name, value] : job.load) {
    if (name != "duration" && name != "warmup" && name != "repetitions") check.params[name] = value;
  }
  check.self_path = harness::SelfExecutable();
  check.cpus_mode = "shared";
  harness::RunFlags timing;
  timing.duration = job.load.count("duration") ? job.load.at("duration") : "";
  timing.warmup = job.load.count("warmup") ? job.load.at("warmup") : "";
  timing.repetitions = job.load.count("repetitions") ? job.load.at("repetitions") : "";
  harness::ToOptions(timing);
  harness::PlanAll({"echo"}, check);
}

// The job's folder: --out (a trailing .json dropped), or results/slurm-TIME.
std::string JobDirectory(const std::string& out) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::string dir = out.empty() ? harness::DefaultOut(fmt::format("slurm-{}", now)) : harness::UserPath(out);
  if (dir.size() > 5 && dir.substr(dir.size() - 5) == ".json") dir.resize(dir.size() - 5);
  return std::filesystem::absolute(dir).lexically_normal().string();
}

class SlurmCommand final : public harness::Command {
 public:
  std::string name() const override { return "slurm"; }
  std::string help() const override {
    return "one Slurm job: an echo server task and N load tasks started together, merged";
  }

  void Declare(CLI::App& app) override {
    app.add_option("--model", job_.model, "the echo model to serve")->required();
    app.add_option("--loads", job_.loads, "load tasks (default 2), on as many nodes as the allocation has")
        ->check(CLI::Range(1, 1000));
    for (const char* name : kServeFlags) SideFlag(app, name, "as for serve", {&job_.serve});
    for (const char* name : kBothFlags) SideFlag(app, name, "as for serve and load", {&job_.serve, &job_.load});
    for (const char* name : kLoadFlags) SideFlag(app, name, "as for load (per load task)", {&job_.load});
    app.add_option("--partition", job_.partition, "the Slurm partition (default: the cluster's)");
    app.add_option("--sbatch", job_.sbatch, "an sbatch option, as it is (repeatable), e.g. --sbatch=--time=10");
    app.add_option("--harness", job_.harness, "the binary the nodes run (default: this one, same path there)");
    app.add_option("--out", out_,
                   "a new or empty directory for the script, the loads' files and merged.json "
                   "(default results/slurm-TIME; must be shared by the nodes)");
    app.add_flag("--dry-run", dry_run_, "write and print the batch script, submit nothing");
    app.add_flag("--wait", wait_, "wait for the job to end (sbatch --wait) and exit with its status");
  }

  int Execute(const CLI::App&, const std::string&) override {
    CheckAsServeAndLoad(job_);
    SlurmJob job = job_;
    job.harness = std::filesystem::absolute(job.harness.empty() ? harness::SelfExecutable() : job.harness).string();
    job.dir = JobDirectory(out_);
    const std::string script = BatchScript(job);  // refuses what cannot stand in it before anything is made
    MakeFreshDirectory(job.dir);
    const std::string script_path = job.dir + "/job.sh";
    try {
      harness::WriteFileSafely(script_path, script);
    } catch (const std::runtime_error& e) {
      throw UsageError(std::string("--out: ") + e.what());
    }
    std::cout << "# " << script_path << "\n" << script << std::flush;
    return Submit(script_path, job.dir);
  }

 private:
  void SideFlag(CLI::App& app, const char* name, const char* help,
                std::vector<std::map<std::string, std::string>*> to) {
    app.add_option_function<std::string>(
        std::string("--") + name,
        [to, name](const std::string& v) {
          for (auto* side : to) (*side)[name] = v;
        },
        help);
  }

  int Submit(const std::string& script_path, const std::string& dir) const {
    const std::string shown = std::string("sbatch --parsable") + (wait_ ? " --wait " : " ") + ShellWord(script_path);
    if (dry_run_) {
      std::cout << "# --dry-run: not submitted; to submit: " << shown << "\n";
      return 0;
    }
    std::cout << "# " << shown << std::endl;
    std::vector<std::string> submit = {"sbatch", "--parsable"};
    if (wait_) submit.push_back("--wait");
    submit.push_back(script_path);
    const int status = Spawn(submit);
    if (status == 127) throw UsageError("slurm: sbatch not found (install slurm-wlm, or --dry-run)");
    if (wait_) std::cout << "# results: " << dir << "/merged.json\n";
    return status == 0 ? 0 : harness::kExitFailedRuns;
  }

  SlurmJob job_;
  std::string out_;
  bool dry_run_ = false, wait_ = false;
};

}  // namespace

HARNESS_REGISTER(harness::CommandEntry, std::make_unique<SlurmCommand>());

}  // namespace echo
