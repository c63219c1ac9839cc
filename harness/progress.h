// Progress on stderr. On a terminal, one line rewritten in place; otherwise one line per finished
// run and one per finished round of repetitions (runs are interleaved: a run finishes only in the
// last round), so that logs of long CI runs show where they are and how long is left.
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
  // Something the user should hear of at once, on its own line (a repetition measured again).
  void Note(const std::string& text);
  // Round `round` (0-based) of `rounds` is over, `elapsed_s` seconds since the first began.
  void RoundFinished(int round, int rounds, double elapsed_s);

 private:
  int total_;
  bool tty_;
};

}  // namespace harness
