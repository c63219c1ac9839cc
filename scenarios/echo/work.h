// Requests that cost something (--work): each request carries the CPU and the waiting its server
// must spend on it before replying, drawn from seeded distributions by the load generator.
//
//   cpu:fixed:50us                 every request burns 50 us of the serving thread's CPU
//   cpu:exp:20us                   exponential, mean 20 us
//   cpu:bimodal:0.995:10us:1ms     10 us with probability 0.995, else 1 ms
//   wait:fixed:1ms, wait:exp:1ms   the same for waiting (a database call, a disk read)
//   cpu:exp:20us+wait:fixed:1ms    both: the CPU first, then the wait
//
// The work of message `seq` of connection `stream` is a pure function of (stream, seq), so every
// model gets the identical sequence, and the load generator knows each request's work and class.
//
// On the wire, with --work, each TCP message begins with a header (WorkHeader::kSize bytes):
//   "work" | u32 message length | u64 CPU ns | u64 wait ns      (little-endian)
// and its reply begins with the same header, "done" in place of "work", under the reply's rule. A
// server that echoes without reading the header sends "work" back: caught, and named as such.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace echo {

// One distribution of nanoseconds.
struct Distribution {
  enum class Kind { kNone, kFixed, kExp, kBimodal };
  Kind kind = Kind::kNone;
  double first_ns = 0;   // fixed: the value; exp: the mean; bimodal: the value drawn with probability p
  double second_ns = 0;  // bimodal: the other value
  double p = 1;          // bimodal: the probability of first_ns

  // The value at quantile u in [0, 1).
  double At(double u) const;
  double Mean() const;
  // Which class a value belongs to: 0 the short requests, 1 the long: bimodal, the smaller value
  // and the larger; exp, below the median and above; fixed and none, 0.
  int ClassOf(double ns) const;
  bool variable() const { return kind == Kind::kExp || kind == Kind::kBimodal; }
  std::string ToString() const;
};

// What one request costs.
struct Work {
  uint64_t cpu_ns = 0;
  uint64_t wait_ns = 0;
  int cls = 0;  // short (0) or long (1): Distribution::ClassOf of the variable part, the CPU's or the wait's
};

class WorkSpec {
 public:
  WorkSpec() = default;
  // "cpu:KIND:...", "wait:KIND:..." or both joined by '+'. Throws std::invalid_argument naming
  // what is wrong.
  static WorkSpec Parse(const std::string& text);
  std::string ToString() const;  // canonical: durations with units, cpu before wait

  bool empty() const { return cpu_.kind == Distribution::Kind::kNone && wait_.kind == Distribution::Kind::kNone; }
  const Distribution& cpu() const { return cpu_; }
  const Distribution& wait() const { return wait_; }
  // The work of message `seq` of connection `stream`: the same for every model and run.
  Work Of(uint64_t stream, uint64_t seq) const;
  // The classes requests fall in: 2 when a part is variable, else 1.
  int classes() const { return (cpu_.variable() || wait_.variable()) ? 2 : 1; }

 private:
  Distribution cpu_, wait_;
};

struct WorkHeader {
  static constexpr size_t kSize = 24;
  uint32_t length = 0;  // of the whole message, this header included
  uint64_t cpu_ns = 0;
  uint64_t wait_ns = 0;

  enum class Read { kOk, kNeedMore, kBad };
  // Reads a request's header from the `n` bytes at `data`: kBad when they do not begin with
  // "work", or the length is under kSize or over `max_length`.
  static Read From(const char* data, size_t n, size_t max_length, WorkHeader* out);
  // Writes the header of a request ("work") or of its reply ("done") at `data`.
  void WriteRequest(char* data) const;
  void WriteReply(char* data) const;
};

// The calling thread's CPU time so far, in ns (a system call: CLOCK_THREAD_CPUTIME_ID has no vDSO
// path). Async-signal-safe.
int64_t ThreadCpuNs();
// Burns `ns` of the calling thread's CPU time on real computation: runs until the thread's CPU
// clock has advanced by that much, so a request preempted halfway still does all of its work.
// Async-signal-safe (a forked child may call it).
void BurnCpu(uint64_t ns);
// Sleeps `ns` on the monotonic clock, blocking the thread, to the end even if a signal interrupts.
// Async-signal-safe.
void BlockFor(uint64_t ns);

}  // namespace echo
