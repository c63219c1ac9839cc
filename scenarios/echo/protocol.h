// The echo protocol: the client sends `size` bytes; the server returns the same bytes with ASCII
// letters upper-cased, in order, on the same connection. TCP splits and merges: neither side may
// assume one recv is one message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace echo {

// Per-connection buffer every server model uses, so memory figures compare like with like.
inline constexpr size_t kBufferSize = 16 * 1024;

inline char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - ('a' - 'A')) : c; }

inline void UpperCase(char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) data[i] = Upper(data[i]);
}

// The bytes a client sends and expects back. Message `seq` of connection `stream` starts at an
// offset of one pseudo-random buffer holding every byte value, drawn by hashing (salt, stream, seq),
// so a server that drops, repeats or reorders bytes, upper-cases the wrong ones, or sends one
// connection's reply to another (of this load, or of another load with its own salt) is caught.
class MessagePattern {
 public:
  explicit MessagePattern(size_t size, uint64_t salt = 0);
  size_t size() const { return size_; }
  uint64_t salt() const { return salt_; }
  const char* Request(uint64_t stream, uint64_t seq) const { return request_.data() + Offset(stream, seq); }
  const char* Reply(uint64_t stream, uint64_t seq) const { return reply_.data() + Offset(stream, seq); }

 private:
  static constexpr size_t kOffsets = 65521;  // prime: offsets of two streams rarely coincide
  size_t Offset(uint64_t stream, uint64_t seq) const;
  size_t size_;
  uint64_t salt_;
  std::vector<char> request_;
  std::vector<char> reply_;
};

}  // namespace echo
