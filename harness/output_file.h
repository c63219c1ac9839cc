// The one file a command writes its results to, replaced whole and atomically on every write.
//
// Safe against what a careless or hostile user can put at the path: a path that exists and is not
// a regular file (a device such as /dev/null, a FIFO, a directory, a symbolic link) is refused; the
// temporary file is created under a fresh unique name beside it, never through a link; two
// harnesses writing one path at once are refused by a lock (`.NAME.lock` beside it, held while the
// writer lives). A write that fails once the writer is open (the directory removed mid-run, a full
// disk) does not lose the results: they go to a fallback file in $TMPDIR (or /tmp), `path()` names
// it and `fell_back()` says so, for the caller to tell the user.
#pragma once

#include <string>

namespace harness {

// Why `path` must not be written as a file, or "": it exists and is not a regular file (a symbolic
// link, a directory, a FIFO, a device).
std::string NotARegularFile(const std::string& path);

// Replaces the file at `path` with `text` by the rules above (no lock: for a file written once, such
// as a batch script). Throws std::runtime_error with the reason.
void WriteFileSafely(const std::string& path, const std::string& text);

// Opens `path` for writing from its start (created 0644, or truncated when it is a regular file),
// never through a link and never blocking on a FIFO; for a file written as it grows (a log). Returns
// the descriptor; throws std::runtime_error with the reason.
int OpenRegularForWriting(const std::string& path);

class OutputFile {
 public:
  // Throws std::runtime_error with the reason when the path is refused or cannot be written.
  explicit OutputFile(std::string path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Replaces the file's contents with `text`. The first call's failure throws; later failures
  // switch to the fallback file (throwing only if that fails too).
  void Write(const std::string& text);

  const std::string& path() const { return path_; }  // where the results are now
  bool fell_back() const { return fell_back_; }

 private:
  std::string path_;
  std::string lock_path_;
  int lock_fd_ = -1;
  bool written_ = false;
  bool fell_back_ = false;
};

}  // namespace harness
