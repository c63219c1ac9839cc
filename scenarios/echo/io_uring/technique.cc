#include "scenarios/echo/io_uring/technique.h"

namespace echo::uring {

// coalesce: a busy loop (over 85% of a CPU in the last 10 ms, until under 60%; the CPU that requests'
//   --work burned is not the loop's and does not count) sleeps with the kernel's batch wait (6.12)
//   until half of its connections have sent (at most 256), or 50 us have passed with at least one;
//   with DEFER_TASKRUN the senders before the last of a batch do not wake it at all, so a saturated
//   server and its clients pay for fewer wake-ups, while a server with time to spare wakes at the
//   first message, so light loads keep their latency. On a kernel without the batch wait it is
//   `multishot`.
// multishot: each reply is sent from the buffer it arrived in and the buffer goes back to the ring
//   when the send completes: memory follows the messages in flight, not the connections.
// batch: the fewest system calls (the least CPU at a given load), but a closed-loop client waits
//   for the whole batch and finds the server asleep more often (each wake-up costs it a few us).
// fixed: no descriptor lookup per operation. sqpoll: no io_uring_enter to submit. spin: work that
//   arrives while polling costs no wake-up, at the price of the CPU spent polling.
// single: recv, then send until the reply is out, then recv: the form before multishot.
const std::vector<VariantSpec>& VariantSpecs() {
  static const std::vector<VariantSpec> specs = {
      {"coalesce",
       "multishot; when busy, a sleep lasts until half the connections have sent (at most 50 us with one)",
       {.coalesce = true}},
      {"multishot",
       "multishot recv into a ring of provided buffers, each reply sent from its buffer as soon as it is made",
       {}},
      {"fixed", "multishot, connections accepted into the registered file table", {.fixed_files = true}},
      {"sqpoll", "multishot, a kernel thread polls the submission queue (on a server CPU)", {.sqpoll = true}},
      {"single", "one recv or send in flight per connection, into its own buffer", {.multishot = false}},
      {"spin", "multishot, polling the ring's task-run flag 20 us before sleeping", {.spin_us = kSpinMicroseconds}},
      {"batch",
       "multishot, the replies of a batch submitted together at its end (fewest system calls)",
       {.eager = false}},
      {"blocking",
       "multishot; a request's wait blocks the loop (--work): a blocking call inside an event loop, as a blocking "
       "driver makes it",
       {.blocking_wait = true}},
  };
  return specs;
}

Technique TechniqueOf(const std::string& variant) {
  for (const VariantSpec& v : VariantSpecs()) {
    if (v.name == variant) return v.technique;
  }
  return VariantSpecs().front().technique;
}

std::vector<Variant> Variants() {
  std::vector<Variant> out;
  for (const VariantSpec& v : VariantSpecs()) out.push_back({v.name, v.description});
  return out;
}

}  // namespace echo::uring
