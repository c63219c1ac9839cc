#include "harness/perf.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "harness/process_usage.h"

namespace harness {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// perf at its start reads the kernel's tracepoint formats and, for a record, maps a buffer per CPU:
// tens to hundreds of milliseconds here; a minute on a machine swapping hard.
constexpr auto kPerfTimeout = 20s;

}  // namespace

std::string PerfPath() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/perf";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error("perf not found on PATH: setup.sh installs it (Debian's linux-perf)");
}

namespace {

// A folder only this user can enter, for perf's FIFOs and output: nothing another user of /tmp
// made can stand in for them.
std::string MakePrivateDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp != nullptr && *tmp == '/' ? tmp : "/tmp") + "/harness-perf-XXXXXX";
  if (mkdtemp(path.data()) == nullptr) {
    throw std::runtime_error("cannot make a folder for perf in " + path + ": " + std::strerror(errno));
  }
  return path;
}

std::string PidList(pid_t root) {
  std::string list;
  for (const pid_t pid : ProcessTree(root)) list += (list.empty() ? "" : ",") + std::to_string(pid);
  return list;
}

// Runs perf with `args` to its end and returns what it printed; throws with its last words.
std::string PerfOutput(const std::vector<std::string>& args, const CpuList& cpus) {
  std::vector<std::string> argv = {PerfPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess perf(argv, cpus);
  std::string out;
  const auto deadline = Clock::now() + 4 * kPerfTimeout;
  while (Clock::now() < deadline) {
    const auto line = perf.ReadLine(1000ms);
    if (line) {
      out += *line + "\n";
    } else if (!perf.Running()) {
      break;
    }
  }
  const std::string ended = perf.Stop(1000ms);
  if (ended != "exited with status 0") throw std::runtime_error("perf " + args[0] + " " + ended + ": " + perf.StderrTail());
  return out;
}

// A profile's size in the results: stacks under 0.2% of the samples are cut (ParseFoldedStacks),
// and at most this many are kept, the largest.
constexpr double kSmallStack = 0.002;
constexpr size_t kMostStacks = 300;
constexpr size_t kTopFunctions = 30;

uint64_t Count(const std::string& field, const std::string& event) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(field.c_str(), &end, 10);
  if (field.empty() || *end != '\0') throw std::runtime_error("perf stat did not count " + event + ": " + field);
  return n;
}

}  // namespace

PerfSession::PerfSession(const std::string& subcommand, const std::vector<std::string>& args, pid_t root,
                         const CpuList& cpus)
    : dir_(MakePrivateDir()) {
  try {
    Start(subcommand, args, root, cpus);
  } catch (...) {
    Cleanup();
    throw;
  }
}

void PerfSession::Start(const std::string& subcommand, const std::vector<std::string>& args, pid_t root,
                        const CpuList& cpus) {
  const std::string control = File("control"), ack = File("ack");
  if (mkfifo(control.c_str(), 0600) != 0 || mkfifo(ack.c_str(), 0600) != 0) {
    throw std::runtime_error("cannot make perf's control FIFOs in " + dir_ + ": " + std::strerror(errno));
  }
  // Read and write: opening either end alone would wait for perf to open the other.
  control_ = open(control.c_str(), O_RDWR | O_CLOEXEC);
  ack_ = open(ack.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
  std::vector<std::string> argv = {PerfPath(), subcommand};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--output=" + output(), std::string("--delay=-1"),
                           "--control=fifo:" + control + "," + ack, "--pid=" + PidList(root)});
  perf_ = std::make_unique<ChildProcess>(argv, cpus);
  Command("disable");  // acknowledged once perf has opened its events
}

PerfSession::~PerfSession() { Cleanup(); }

void PerfSession::Cleanup() {
  if (perf_) perf_->Stop(1000ms);
  perf_.reset();
  if (control_ >= 0) close(control_);
  if (ack_ >= 0) close(ack_);
  control_ = ack_ = -1;
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void PerfSession::Command(const char* what) {
  const std::string line = std::string(what) + "\n";
  if (control_ < 0 || write(control_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    throw std::runtime_error(std::string("cannot write to perf's control FIFO: ") + std::strerror(errno));
  }
  const auto deadline = Clock::now() + kPerfTimeout;
  std::string got;
  while (got.find('\n') == std::string::npos) {
    if (!perf_->Running()) throw std::runtime_error("perf " + perf_->exit_description() + ": " + perf_->StderrTail());
    if (Clock::now() > deadline) throw std::runtime_error(std::string("perf did not acknowledge '") + what + "'");
    pollfd p{ack_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[16];
    const ssize_t n = read(ack_, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  }
}

void PerfSession::Finish() {
  kill(perf_->pid(), SIGINT);  // perf writes its counts or samples on SIGINT
  const auto deadline = Clock::now() + kPerfTimeout;
  while (perf_->Running() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  if (perf_->Running()) {
    perf_->Stop(1000ms);
    throw std::runtime_error("perf did not end within 20 s of SIGINT");
  }
  const std::string& ended = perf_->exit_description();
  // After SIGINT perf record exits 130 (128 + the signal); perf stat raises it again, once written.
  if (ended != "exited with status 0" && ended != "exited with status 130" && ended != "killed by signal SIGINT") {
    throw std::runtime_error("perf " + ended + ": " + perf_->StderrTail());
  }
}

const std::vector<std::string>& CountedSyscalls() {
  static const std::vector<std::string> names = {
      "read",     "write",       "recvfrom", "sendto",         "recvmsg",         "sendmsg",
      "accept4",  "epoll_wait",  "epoll_pwait", "epoll_ctl",   "io_uring_enter",  "futex",
      "poll",     "sched_yield", "clock_nanosleep", "timerfd_settime"};
  return names;
}

SyscallCounts ParseSyscallCounts(const std::string& csv) {
  SyscallCounts counts;
  bool total_seen = false;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
    if (fields.size() < 3) continue;
    const std::string& event = fields[2];
    if (event == "raw_syscalls:sys_enter") {
      counts.total = Count(fields[0], event);
      total_seen = true;
    } else if (event.rfind("syscalls:sys_enter_", 0) == 0) {
      if (const uint64_t n = Count(fields[0], event); n > 0) counts.by_kind[event.substr(19)] = n;
    }
  }
  if (!total_seen) throw std::runtime_error("perf stat wrote no count of raw_syscalls:sys_enter");
  uint64_t named = 0;
  for (const auto& [name, n] : counts.by_kind) named += n;
  if (counts.total > named) counts.by_kind["other"] = counts.total - named;
  // perf switches its events on and off one after another, so a named kind may count a few calls
  // the total missed (cli_test saw 0.02% once): the total is never less than its parts.
  counts.total = std::max(counts.total, named);
  return counts;
}

SyscallCounter::SyscallCounter(pid_t root, const CpuList& cpus) {
  std::string events = "raw_syscalls:sys_enter";
  for (const auto& name : CountedSyscalls()) events += ",syscalls:sys_enter_" + name;
  session_ = std::make_unique<PerfSession>("stat", std::vector<std::string>{"-x,", "-e", events}, root, cpus);
}

SyscallCounts SyscallCounter::Finish() {
  session_->Finish();
  return ParseSyscallCounts(ReadProcFile(session_->output()));
}

nlohmann::json Profile::ToJson() const {
  nlohmann::json top_json = nlohmann::json::array();
  for (const auto& f : top) top_json.push_back({f.name, f.total, f.self});
  nlohmann::json stacks_json = nlohmann::json::array();
  for (const auto& [stack, n] : stacks) stacks_json.push_back({stack, n});
  return {{"samples", samples},
          {"frequency_hz", frequency_hz},
          {"sampler", "perf record -g (frame pointers), software clock"},
          {"top", {{"columns", {"function", "total", "self"}}, {"rows", std::move(top_json)}}},
          {"stacks", std::move(stacks_json)}};
}

std::vector<std::pair<std::string, uint64_t>> ParseFoldedStacks(const std::string& text, double min_share) {
  std::map<std::string, uint64_t> whole;
  uint64_t samples = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t space = line.find(' ');
    if (line.empty() || !std::isdigit(static_cast<unsigned char>(line[0])) || space == std::string::npos) continue;
    const uint64_t n = std::strtoull(line.c_str(), nullptr, 10);
    whole[line.substr(space + 1)] += n;
    samples += n;
  }
  std::map<std::string, uint64_t> kept;
  for (const auto& [stack, n] : whole) {
    if (static_cast<double>(n) >= min_share * static_cast<double>(samples)) {
      kept[stack] += n;
      continue;
    }
    size_t cut = 0;
    for (size_t frames = 0; frames < kCutDepth && cut != std::string::npos; ++frames) cut = stack.find(';', cut + 1);
    kept[stack.substr(0, cut)] += n;
  }
  std::vector<std::pair<std::string, uint64_t>> out(kept.begin(), kept.end());
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

std::vector<Profile::Function> ParseTopFunctions(const std::string& text, size_t limit) {
  std::vector<Profile::Function> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line) && out.size() < limit;) {
    double total = 0, self = 0;
    int used = 0;
    if (line.empty() || line[0] == '#' || std::sscanf(line.c_str(), " %lf%% %lf%% %n", &total, &self, &used) != 2) {
      continue;
    }
    out.push_back({line.substr(static_cast<size_t>(used)), total / 100, self / 100});
  }
  return out;
}

Profiler::Profiler(pid_t root, const CpuList& cpus) : cpus_(cpus) {
  session_ = std::make_unique<PerfSession>(
      "record", std::vector<std::string>{"--quiet", "--call-graph=fp", "--freq=" + std::to_string(kFrequencyHz),
                                         "--event=cpu-clock", "--no-buildid", "--no-buildid-cache"},
      root, cpus);
}

Profile Profiler::Finish() {
  session_->Finish();
  const std::string data = session_->output();
  Profile profile;
  profile.frequency_hz = kFrequencyHz;
  const std::string folded = PerfOutput(
      {"report", "--input=" + data, "--stdio", "--no-children", "--sort=comm", "-g", "folded,0,caller,count"}, cpus_);
  profile.stacks = ParseFoldedStacks(folded, kSmallStack);
  for (const auto& [stack, n] : profile.stacks) profile.samples += n;
  if (profile.stacks.size() > kMostStacks) profile.stacks.resize(kMostStacks);
  const std::string top = PerfOutput(
      {"report", "--input=" + data, "--stdio", "--children", "--sort=sym", "-g", "none", "--percent-limit=0.5"}, cpus_);
  profile.top = ParseTopFunctions(top, kTopFunctions);
  return profile;
}

}  // namespace harness
