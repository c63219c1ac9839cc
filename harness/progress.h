// Progress on stderr. On a terminal, one line rewritten in place; otherwise one line per finished
// run, so that logs of long CI runs show where they are.
#pragma once

#include <string>

namespace harness {

class Progress {
 public:
  explicit Progress(int total_runs);
  // A repetition of run `index` (0-based) has started.
  void Started(int index, const std::string& name, int repetition, int repetitions);
  // Run `index` has finished; `outcome` is a short summary ("41.2k msgs/s" or "FAILED: ...").
  void Finished(int index, const std::string& name, const std::string& outcome);
  void Clear();

 private:
  int total_;
  bool tty_;
};

}  // namespace harness
