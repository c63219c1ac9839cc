// Repetitions measured in a fresh process. A scenario whose model runs inside the measuring process
// (pipeline) says isolated(): the runner then starts `harness measure`, which measures the one
// repetition and prints it as one JSON line. Each repetition so pays for no address space, heap or
// cached thread stacks that earlier runs left in the harness (forking a process model's children
// from a harness that had run 256-thread pools cost 60% more), and a crash fails one repetition only.
#pragma once

#include <string>

#include "harness/scenario.h"

namespace harness {

// In the harness: runs `spec.self_path measure` and returns what it measured, or a failed
// repetition saying how the child ended. Stops the child when g_interrupted is set.
Repetition MeasureInChild(const RunSpec& spec, int repetition);

// In the child (`harness measure --spec=JSON --repetition=N`): measures and prints one line.
// Returns the exit code.
int MeasureCommand(const std::string& spec_json, int repetition);

}  // namespace harness
