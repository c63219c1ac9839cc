// Where the server and the load generator run: CPU sets, parsed from the command line, checked
// against the machine, applied to processes and threads, and read back.
//
// Client and server on one machine compete for its CPUs; where the scheduler puts them, and
// whether a wake-up crosses CPUs, moved echo figures by ±10% from one run to the next. So by
// default a scenario with a client (echo) gives the server and the load generator disjoint sets:
// the machine's cores (SMT siblings kept together) split in two, the first ceil(n/2) cores for the
// server, the rest for the client; with one CPU, or --cpus=shared, nothing is pinned. A scenario
// without a client (pipeline, micro) runs on the server set, all CPUs unless --server-cpus says.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace harness {

using CpuList = std::vector<int>;  // sorted, unique; empty: not pinned

// "0,2-3" -> {0, 2, 3}; "" -> {}. Throws std::invalid_argument for bad syntax, or (check_machine)
// a CPU that is offline or outside this process's affinity (the CPUs it may use).
CpuList ParseCpuList(const std::string& text, bool check_machine = true);
// {0, 2, 3} -> "0,2-3"; "" for an empty list.
std::string FormatCpuList(const CpuList& cpus);

// The CPUs this process may run on (its affinity when the harness started).
const CpuList& AvailableCpus();
// The CPUs that share a core with `cpu`, itself included (one CPU without SMT).
CpuList SmtSiblings(int cpu);

struct Placement {
  CpuList server;  // the server, its threads and children; pipeline and micro; empty: anywhere
  CpuList client;  // the load generator; empty: anywhere
  // "split" (the default rule), "given" (flags), "shared" (nothing pinned), "all" (no client: every CPU)
  std::string mode = "shared";

  nlohmann::json ToJson() const;
  // The server's and the client's CPUs together, sorted, once each (empty: nothing pinned).
  CpuList UnderTest() const;
};

// What a run gets. `cpus_mode` is "split" (default) or "shared"; `server`/`client` are the flags'
// values ("" when not given). `has_client`: the scenario drives a server with a load generator.
Placement ResolvePlacement(const std::string& cpus_mode, const std::string& server, const std::string& client,
                           bool has_client);

// Pins the calling thread (and so every thread it creates afterwards) to `cpus`; empty: every
// available CPU. Throws std::runtime_error when the kernel refuses.
void PinThisThread(const CpuList& cpus);
// The CPUs a thread may run on, read back from /proc/PID/task/TID/status (Cpus_allowed_list).
CpuList ReadAffinity(pid_t pid, pid_t tid);

}  // namespace harness
