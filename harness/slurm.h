// `harness slurm`: one Slurm job that measures one echo server under several loads at once: a task
// serves the model, N tasks each run `load` against it, all starting at one wall-clock time
// (`load --start-at`), and the job merges their files into one (`merge`). The batch script is
// written to the output directory, printed, and submitted with sbatch (not with --dry-run).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace harness {

struct SlurmJob {
  std::string harness;                        // the binary every node runs (same path everywhere)
  std::string dir;                            // where the script, the loads' files and merged.json go
  std::string model;
  int loads = 2;
  std::map<std::string, std::string> serve;   // serve flags: workers, variant, reply, transport
  std::map<std::string, std::string> load;    // load flags: connections, size, duration, ...
  std::string partition;
  std::vector<std::string> sbatch;            // options passed to sbatch as they are
  int start_delay_s = 5;                      // the loads start this long after the server answers
};

// The batch script: readable on its own, every step commented.
std::string BatchScript(const SlurmJob& job);

}  // namespace harness
