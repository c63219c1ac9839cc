#include "harness/output_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace harness {
namespace {

std::string Errno(int err) { return std::strerror(err); }

std::string Kind(mode_t mode) {
  if (S_ISLNK(mode)) return "is a symbolic link";
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device";
  return "is not a regular file";
}

}  // namespace

std::string NotARegularFile(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return "";
  return S_ISREG(st.st_mode) ? "" : Kind(st.st_mode);
}

namespace {

// Writes `text` to a new file beside `path` (a unique name, O_EXCL: nothing planted there is
// followed), fsyncs it and renames it over `path`. Returns "" or the reason.
std::string ReplaceAtomically(const std::string& path, const std::string& text) {
  const std::filesystem::path p(path);
  std::string pattern = (p.parent_path() / ("." + p.filename().string() + ".XXXXXX.tmp")).string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  const int fd = mkostemps(name.data(), 4, O_CLOEXEC);
  if (fd < 0) return "cannot create a file beside it: " + Errno(errno);
  const std::string tmp(name.data());
  fchmod(fd, 0644);
  std::string error;
  for (size_t done = 0; done < text.size() && error.empty();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      error = "write: " + Errno(n < 0 ? errno : ENOSPC);
    else
      done += static_cast<size_t>(n);
  }
  if (error.empty() && fsync(fd) != 0) error = "fsync: " + Errno(errno);
  close(fd);
  if (const std::string why = NotARegularFile(path); error.empty() && !why.empty()) error = why + " now";
  if (error.empty() && rename(tmp.c_str(), path.c_str()) != 0) error = "rename: " + Errno(errno);
  if (!error.empty()) unlink(tmp.c_str());
  return error;
}

// A new, unique file in $TMPDIR or /tmp named after `path`.
std::string MakeFallback(const std::string& path) {
  const char* dir = std::getenv("TMPDIR");
  const std::string stem = std::filesystem::path(path).stem().string();
  std::string pattern = std::string(dir && *dir ? dir : "/tmp") + "/harness-" + stem + "-XXXXXX.json";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  const int fd = mkostemps(name.data(), 5, O_CLOEXEC);
  if (fd < 0) return "";
  close(fd);
  return name.data();
}

}  // namespace

void WriteFileSafely(const std::string& path, const std::string& text) {
  if (const std::string why = NotARegularFile(path); !why.empty()) {
    throw std::runtime_error(path + " " + why + "; name a regular file");
  }
  if (const std::string error = ReplaceAtomically(path, text); !error.empty()) {
    throw std::runtime_error("cannot write " + path + ": " + error);
  }
}

int OpenRegularForWriting(const std::string& path) {
  if (const std::string why = NotARegularFile(path); !why.empty()) {
    throw std::runtime_error(path + " " + why + "; name a regular file");
  }
  // O_NOFOLLOW and O_NONBLOCK close the gap between the check and the open: a link planted since is
  // refused, and a FIFO answers at once (ENXIO without a reader) instead of waiting for one.
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + Errno(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw std::runtime_error(path + " " + Kind(st.st_mode) + "; name a regular file");
  }
  if (ftruncate(fd, 0) != 0 || fcntl(fd, F_SETFL, 0) != 0) {
    const int err = errno;
    close(fd);
    throw std::runtime_error("cannot write " + path + ": " + Errno(err));
  }
  return fd;
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  if (const std::string why = NotARegularFile(path_); !why.empty()) {
    throw std::runtime_error(path_ + " " + why + "; name a regular file");
  }
  const std::filesystem::path p(path_);
  lock_path_ = (p.parent_path() / ("." + p.filename().string() + ".lock")).string();
  // The lock file may be left behind by a killed harness; the lock itself dies with its holder.
  // A holder that unlinks the file between our open and our flock leaves us a lock on nothing:
  // so the lock counts only while the name still leads to the file locked.
  for (int attempt = 0; attempt < 10 && lock_fd_ < 0; ++attempt) {
    const int fd = open(lock_path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create the lock file " + lock_path_ + ": " + Errno(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {};
      const ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
      close(fd);
      throw std::runtime_error(path_ + " is being written by another harness" +
                               (n > 0 ? " (pid " + std::string(pid, static_cast<size_t>(n)) + ")" : std::string()) +
                               "; name another file");
    }
    struct stat held {
    }, named{};
    if (fstat(fd, &held) == 0 && stat(lock_path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      lock_fd_ = fd;
    } else {
      close(fd);
    }
  }
  if (lock_fd_ < 0) throw std::runtime_error("cannot lock " + lock_path_);
  const std::string pid = std::to_string(getpid());
  if (ftruncate(lock_fd_, 0) != 0 || pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    // The pid only makes the refusal's message better.
  }
}

OutputFile::~OutputFile() {
  if (lock_fd_ >= 0) {
    unlink(lock_path_.c_str());
    close(lock_fd_);
  }
}

void OutputFile::Write(const std::string& text) {
  std::string error = ReplaceAtomically(path_, text);
  if (error.empty()) {
    written_ = true;
    return;
  }
  if (!written_ || fell_back_) throw std::runtime_error("cannot write " + path_ + ": " + error);
  const std::string fallback = MakeFallback(path_);
  if (fallback.empty() || !ReplaceAtomically(fallback, text).empty()) {
    throw std::runtime_error("cannot write " + path_ + " (" + error +
                             ") nor a fallback file in the temporary directory");
  }
  path_ = fallback;
  fell_back_ = true;
}

}  // namespace harness
