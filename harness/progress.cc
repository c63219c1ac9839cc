#include "harness/progress.h"

#include <unistd.h>

#include <cstdio>

namespace harness {

Progress::Progress(int total_runs) : total_(total_runs), tty_(isatty(STDERR_FILENO) == 1) {}

void Progress::Started(int index, const std::string& name, int repetition, int repetitions) {
  if (!tty_) return;
  std::fprintf(stderr, "\r\033[K[%d/%d] %s  repetition %d/%d", index + 1, total_, name.c_str(), repetition + 1,
               repetitions);
  std::fflush(stderr);
}

void Progress::Finished(int index, const std::string& name, const std::string& outcome) {
  if (tty_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "[%d/%d] %s  %s\n", index + 1, total_, name.c_str(), outcome.c_str());
  std::fflush(stderr);
}

void Progress::Note(const std::string& text) {
  if (tty_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "  %s\n", text.c_str());
  std::fflush(stderr);
}

void Progress::RoundFinished(int round, int rounds, double elapsed_s) {
  if (round + 1 >= rounds) return;  // the last round's runs have each said so
  if (tty_) std::fprintf(stderr, "\r\033[K");
  const double left_s = elapsed_s / (round + 1) * (rounds - round - 1);
  std::fprintf(stderr, "round %d/%d of repetitions done in %.0f s; about %.0f s left\n", round + 1, rounds, elapsed_s,
               left_s);
  std::fflush(stderr);
}

}  // namespace harness
