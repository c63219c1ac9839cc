// The io_uring model's variants (--variant): one table, read by the loops (TechniqueOf), by the
// model's registration (its variants, which `list` prints) and nowhere else.
#pragma once

#include <string>
#include <vector>

#include "scenarios/echo/server.h"

namespace echo::uring {

// `spin`: how long a loop with nothing to do polls its ring before it sleeps in the kernel.
inline constexpr int kSpinMicroseconds = 20;

// What a variant changes in the loops.
struct Technique {
  bool multishot = true;       // one multishot recv per connection into provided buffers (else `single`)
  bool fixed_files = false;    // connections accepted into the ring's registered file table
  bool sqpoll = false;         // a kernel thread polls the submission queue
  int spin_us = 0;             // poll the ring this long before sleeping
  bool coalesce = false;       // when busy, wake for a batch (the kernel's batch wait)
  bool eager = true;           // TCP: submit each reply as soon as it is made, not once per batch
  bool blocking_wait = false;  // --work: a request's wait blocks the loop (no timeout operation)
};

struct VariantSpec {
  const char* name;
  const char* description;  // one line, as `list` shows it
  Technique technique;
};

// Every variant, the default first.
const std::vector<VariantSpec>& VariantSpecs();
// The technique of `variant` ("" or an unknown name: the default's).
Technique TechniqueOf(const std::string& variant);
// The variants as the model registers them.
std::vector<Variant> Variants();

}  // namespace echo::uring
