#include "scenarios/echo/slurm_script.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "harness/text.h"

namespace echo {
namespace {

using harness::IsUtf8;
using harness::Printable;

bool Plain(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
}

// A value for an `#SBATCH` line, where sbatch splits words itself: one that needs no quoting.
std::string SbatchWord(const std::string& flag, const std::string& value) {
  if (!value.empty() && std::all_of(value.begin(), value.end(), Plain)) return value;
  throw std::invalid_argument(flag + ": '" + Printable(value) +
                              "' cannot stand in an #SBATCH line (letters, digits "
                              "and _@%+=:,./- only)");
}

std::string Flags(const std::map<std::string, std::string>& flags) {
  std::string out;
  for (const auto& [name, value] : flags) {
    try {
      out += " " + ShellWord("--" + name + "=" + value);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--" + name + ": " + e.what());
    }
  }
  return out;
}

}  // namespace

std::string ShellWord(const std::string& word) {
  if (!IsUtf8(word)) throw std::invalid_argument("'" + Printable(word) + "' is not UTF-8 text");
  if (std::any_of(word.begin(), word.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; })) {
    throw std::invalid_argument("'" + Printable(word) + "' holds a control character (a newline, a tab, an escape)");
  }
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

namespace {

// What the job is, what it needs, and what sbatch is asked for.
std::string Header(const SlurmJob& job) {
  std::string s = "#!/bin/bash\n";
  s += fmt::format(
      "# An echo measurement across a Slurm allocation, written by `harness slurm`:\n"
      "#   1 task serves `{model}`; {loads} tasks each drive it (`harness load`), on as many nodes as the\n"
      "#   allocation has, all starting at one wall-clock time; their results are merged into\n"
      "#   {dir}/merged.json.\n"
      "# Needs: the harness binary at the same path on every node, this directory on a filesystem every\n"
      "# node shares, and the server's port (any free one) reachable from the load nodes.\n",
      fmt::arg("model", job.model), fmt::arg("loads", job.loads), fmt::arg("dir", job.dir));
  s += "#SBATCH --job-name=harness-echo-" + SbatchWord("--model", job.model) + "\n";
  s += fmt::format("#SBATCH --ntasks={}\n", job.loads + 1);
  s += "#SBATCH --spread-job\n";
  s += "#SBATCH --output=" + SbatchWord("--out", job.dir) + "/slurm-%j.out\n";
  if (!job.partition.empty()) s += "#SBATCH --partition=" + SbatchWord("--partition", job.partition) + "\n";
  for (const auto& option : job.sbatch) {
    if (option.rfind('-', 0) != 0)
      throw std::invalid_argument("--sbatch: '" + Printable(option) + "' is not an option");
    s += "#SBATCH " + SbatchWord("--sbatch", option) + "\n";
  }
  s += "set -uo pipefail\n";
  s += "HARNESS=" + ShellWord(job.harness) + "\n";
  s += "DIR=" + ShellWord(job.dir) + "\n\n";
  return s;
}

std::string ServerStep(const SlurmJob& job) {
  std::string s =
      "# 1. The server: one task on the allocation's first node, listening on every address of its node,\n"
      "#    on any free port. It prints its node's name, then `listening on 0.0.0.0:PORT`. The loads\n"
      "#    reach it at the address Slurm reaches that node at (its NodeAddr). It samples its own CPU\n"
      "#    every 100 ms into server-usage.jsonl: the loads, elsewhere, cannot.\n";
  s += "srun --ntasks=1 --nodes=1 --relative=0 --overlap bash -c 'echo \"node $SLURMD_NODENAME\"; exec \"$0\" \"$@\"' "
       "\"$HARNESS\" \\\n"
       "    serve --model=" +
       ShellWord(job.model) + " --listen=0.0.0.0:0 --usage=\"$DIR/server-usage.jsonl\"" + Flags(job.serve) +
       " > \"$DIR/server.out\" 2>&1 &\n";
  s += "server=$!\n";
  s += "for _ in $(seq 600); do\n"
       "  grep -q '^listening on' \"$DIR/server.out\" && break\n"
       "  kill -0 \"$server\" 2> /dev/null || { echo 'the server did not start:'; cat \"$DIR/server.out\"; exit 1; }\n"
       "  sleep 0.1\n"
       "done\n";
  s += "node=$(sed -n 's/^node //p' \"$DIR/server.out\")\n";
  s += "port=$(sed -n 's/^listening on .*:\\([0-9]*\\)$/\\1/p' \"$DIR/server.out\")\n";
  s += "node_addr=$(scontrol show node \"$node\" | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p')\n";
  s += "address=$(getent ahostsv4 \"${node_addr:-$node}\" | awk 'NR == 1 { print $1 }')\n";
  s += "[ -n \"$port\" ] && [ -n \"$address\" ] || { echo \"no server address: node '$node', port '$port'\"; exit 1; "
       "}\n";
  s += "echo \"server: $node ($address), port $port\"\n\n";
  return s;
}

std::string LoadsStep(const SlurmJob& job) {
  std::string s = fmt::format(
      "# 2. The loads: {0} tasks, each with its own results file, all starting {1} s from now (`load\n"
      "#    --start-at`: every repetition of every load at one time). With more than one node the\n"
      "#    loads leave the server's node to it and go round the others (--overcommit: Slurm may\n"
      "#    have given those nodes fewer CPUs than loads); with one, they share it.\n",
      job.loads, job.start_delay_s);
  s += fmt::format("loads={}\n", job.loads);
  s += "nodes=${SLURM_JOB_NUM_NODES:-1}\n";
  s += "if [ \"$nodes\" -gt 1 ]; then\n"
       "  apart=(--relative=1 --nodes=$(( nodes - 1 < loads ? nodes - 1 : loads )) --overcommit)\n"
       "else\n"
       "  apart=(--nodes=1)\n"
       "fi\n";
  s += fmt::format("start=$(( $(date +%s) + {} ))\n", job.start_delay_s);
  s += "srun --ntasks=\"$loads\" \"${apart[@]}\" --distribution=cyclic --overlap bash -c \\\n";
  s += "    'echo \"load $SLURM_PROCID on $SLURMD_NODENAME\"; exec \"$0\" load --target=\"$1\" --start-at=\"$2\" \\\n"
       "         --out=\"$3/load-$SLURM_PROCID.json\" \"${@:4}\"' \\\n";
  s +=
      "    \"$HARNESS\" \"$address:$port\" \"$start\" \"$DIR\" --name=" + ShellWord(job.model) + Flags(job.load) + "\n";
  s += "status=$?\n\n";
  return s;
}

std::string MergeStep() {
  std::string s =
      "# 3. Stop the server (SIGTERM: it exits cleanly), then merge the loads' files into one, each\n"
      "#    repetition charged with the server's CPU over its window.\n";
  s += "kill \"$server\"\n";
  s += "wait \"$server\"\n";
  s +=
      "\"$HARNESS\" merge \"$DIR\"/load-*.json --server-usage=\"$DIR/server-usage.jsonl\" --out=\"$DIR/merged.json\"\n";
  s += "merged=$?\n";
  s += "echo \"loads exited $status, merge $merged: $DIR/merged.json\"\n";
  s += "[ \"$status\" -eq 0 ] && [ \"$merged\" -eq 0 ]\n";
  return s;
}

}  // namespace

std::string BatchScript(const SlurmJob& job) { return Header(job) + ServerStep(job) + LoadsStep(job) + MergeStep(); }

}  // namespace echo
