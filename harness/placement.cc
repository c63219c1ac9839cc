#include "harness/placement.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>

#include "harness/process_usage.h"

namespace harness {
namespace {

// Parses the kernel's list syntax; no checks against the machine.
CpuList ParseListSyntax(const std::string& text) {
  CpuList cpus;
  if (text.empty()) return cpus;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    try {
      size_t used = 0;
      const int lo = std::stoi(item.substr(0, dash), &used);
      if (used != (dash == std::string::npos ? item.size() : dash) || lo < 0) throw std::invalid_argument(item);
      int hi = lo;
      if (dash != std::string::npos) {
        hi = std::stoi(item.substr(dash + 1), &used);
        if (used != item.size() - dash - 1 || hi < lo) throw std::invalid_argument(item);
      }
      if (hi > 4095) throw std::invalid_argument(item);
      for (int c = lo; c <= hi; ++c) cpus.push_back(c);
    } catch (const std::logic_error&) {
      throw std::invalid_argument("not a CPU list (e.g. 0,2-3): '" + text + "'");
    }
    start = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

CpuList ReadListFile(const std::string& path) {
  std::istringstream in(ReadProcFile(path));
  std::string line;
  if (!std::getline(in, line) || line.empty()) return {};
  try {
    return ParseListSyntax(line);
  } catch (const std::invalid_argument&) {
    return {};
  }
}

CpuList OnlineCpus() { return ReadListFile("/sys/devices/system/cpu/online"); }

}  // namespace

// The affinity this process started with: taken once, before anything pins the main thread.
const CpuList& AvailableCpus() {
  static const CpuList cpus = [] {
    CpuList out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) out.push_back(c);
      }
    }
    return out;
  }();
  return cpus;
}

namespace {

// Whole cores, in the order of their first CPU.
std::vector<CpuList> Cores(const CpuList& cpus) {
  std::map<int, CpuList> by_first;
  for (int c : cpus) {
    CpuList siblings = SmtSiblings(c);
    CpuList usable;
    std::set_intersection(siblings.begin(), siblings.end(), cpus.begin(), cpus.end(), std::back_inserter(usable));
    by_first[usable.empty() ? c : usable.front()] = usable.empty() ? CpuList{c} : usable;
  }
  std::vector<CpuList> cores;
  for (auto& [first, list] : by_first) cores.push_back(std::move(list));
  return cores;
}

}  // namespace

CpuList ParseCpuList(const std::string& text, bool check_machine) {
  const CpuList cpus = ParseListSyntax(text);
  if (!check_machine) return cpus;
  const CpuList online = OnlineCpus(), &allowed = AvailableCpus();
  for (int c : cpus) {
    if (!online.empty() && !std::binary_search(online.begin(), online.end(), c)) {
      throw std::invalid_argument("CPU " + std::to_string(c) + " is not online here (online: " + FormatCpuList(online) +
                                  ")");
    }
    if (!std::binary_search(allowed.begin(), allowed.end(), c)) {
      throw std::invalid_argument("CPU " + std::to_string(c) + " is not one this process may use (" +
                                  FormatCpuList(allowed) + ")");
    }
  }
  return cpus;
}

std::string FormatCpuList(const CpuList& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(cpus[i]) + (j > i ? "-" + std::to_string(cpus[j]) : "");
    i = j + 1;
  }
  return out;
}

CpuList SmtSiblings(int cpu) {
  CpuList siblings =
      ReadListFile("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list");
  return siblings.empty() ? CpuList{cpu} : siblings;
}

CpuList Placement::UnderTest() const {
  CpuList cpus = server;
  cpus.insert(cpus.end(), client.begin(), client.end());
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

nlohmann::json Placement::ToJson() const {
  return {{"mode", mode}, {"server_cpus", FormatCpuList(server)}, {"client_cpus", FormatCpuList(client)}};
}

Placement ResolvePlacement(const std::string& cpus_mode, const std::string& server, const std::string& client,
                           bool has_client) {
  if (cpus_mode != "split" && cpus_mode != "shared") {
    throw std::invalid_argument("--cpus: split or shared, not '" + cpus_mode + "'");
  }
  const auto parse = [](const char* flag, const std::string& text) {
    try {
      return ParseCpuList(text);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(flag) + ": " + e.what());
    }
  };
  Placement p;
  if (!server.empty()) p.server = parse("--server-cpus", server);
  if (!client.empty()) p.client = parse("--client-cpus", client);
  if (!server.empty() || !client.empty()) {
    if (cpus_mode == "shared")
      throw std::invalid_argument("--cpus=shared pins nothing: drop --server-cpus/--client-cpus");
    p.mode = "given";
    if (has_client) {  // one side given: the other gets the rest, if any is left
      const auto rest = [](const CpuList& taken) {
        CpuList out;
        const CpuList& all = AvailableCpus();
        std::set_difference(all.begin(), all.end(), taken.begin(), taken.end(), std::back_inserter(out));
        return out;
      };
      if (p.client.empty()) p.client = rest(p.server);
      if (p.server.empty()) p.server = rest(p.client);
    }
  }
  if (cpus_mode == "shared" || !has_client) {
    if (!has_client) p.client.clear();
    if (!has_client && p.server.empty()) {
      p.server = AvailableCpus();
      p.mode = "all";
    }
    return p;
  }
  const std::vector<CpuList> cores = Cores(AvailableCpus());
  if (p.mode != "given" && cores.size() >= 2) {
    p.mode = "split";
    const size_t server_cores = (cores.size() + 1) / 2;
    for (size_t i = 0; i < cores.size(); ++i) {
      CpuList& side = i < server_cores ? p.server : p.client;
      side.insert(side.end(), cores[i].begin(), cores[i].end());
    }
  }
  return p;
}

void PinThisThread(const CpuList& cpus) {
  const CpuList& target = cpus.empty() ? AvailableCpus() : cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : target) CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    throw std::runtime_error("cannot pin to CPUs " + FormatCpuList(target) + ": " + std::strerror(errno));
  }
}

CpuList ReadAffinity(pid_t pid, pid_t tid) {
  std::istringstream in(ReadProcFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Cpus_allowed_list:", 0) == 0)
      return ParseListSyntax(line.substr(line.find_first_not_of(" \t", 18)));
  }
  return {};
}

}  // namespace harness
