// `harness slurm`: one Slurm job that measures one echo server under several loads at once: a task
// serves the model, N tasks each run `load` against it, all starting at one wall-clock time
// (`load --start-at`), and the job merges their files into one (`merge`). The batch script is
// written to the output directory, printed, and submitted with sbatch (not with --dry-run).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace echo {

struct SlurmJob {
  std::string harness;  // the binary every node runs (same path everywhere)
  std::string dir;      // where the script, the loads' files and merged.json go
  std::string model;
  int loads = 2;
  std::map<std::string, std::string> serve;  // serve flags: workers, variant, reply, transport
  std::map<std::string, std::string> load;   // load flags: connections, size, duration, ...
  std::string partition;
  std::vector<std::string> sbatch;  // options passed to sbatch as they are
  int start_delay_s = 5;            // the loads start this long after the server answers
};

// The one way a value reaches the batch script's commands: `word` as one bash word, in single quotes
// (a quote inside written '\''). Throws std::invalid_argument for a word no quoting makes safe in a script a person
// reads and runs: control bytes (a newline ends a command and a comment), or bytes that are not UTF-8.
std::string ShellWord(const std::string& word);

// The batch script: readable on its own, every step commented. Every value goes through ShellWord;
// those on `#SBATCH` lines (sbatch splits them itself, not bash) must be plain: letters, digits and
// _@%+=:,./- only; an sbatch option must start with '-'. Throws std::invalid_argument naming the flag whose value
// cannot stand.
std::string BatchScript(const SlurmJob& job);

}  // namespace echo
