// --syscalls and --flamegraph: why a model costs what it does, from Linux perf attached to the
// server's process tree (harness/perf.h). Counting system calls rides the measured window (its cost
// is the counters' in the server's context; docs/measuring.md has it measured); a profile takes a
// window of its own after the first repetition's, on the same server under the same load, whose
// figures are not kept: sampling stacks costs more than a measured figure can carry.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "harness/perf.h"
#include "harness/placement.h"
#include "harness/scenario.h"
#include "scenarios/echo/load_generator.h"

namespace echo {

// Refuses the tracing flags where they cannot work (no server pid to attach to, a capacity search,
// no perf), naming the flag; marks the run's plan_data for Measure. Throws std::invalid_argument.
void PlanTracing(const harness::Options& options, harness::RunSpec& run);

bool CountsSyscalls(const harness::RunSpec& run);
bool Profiles(const harness::RunSpec& run, int repetition_index);

// A window's system calls per round trip into `rep`: syscalls_per_msg, and by kind in its detail.
void PutSyscalls(const harness::SyscallCounts& counts, harness::Repetition& rep);

// One more window of `config` against `server`, sampled; the profile for the repetition's detail.
nlohmann::json ProfileWindow(LoadConfig config, pid_t server, const harness::CpuList& perf_cpus);

}  // namespace echo
