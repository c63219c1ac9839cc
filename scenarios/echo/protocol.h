// The echo protocol: the client sends `size` bytes; the server sends back a reply made from them,
// in order, on the same connection, by the rule of --reply (ReplyMode below): by default the same
// bytes with ASCII letters upper-cased. TCP splits and merges: neither side may assume one recv is
// one message, except where a reply adds bytes of its own (prefix: see ReplyMode).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "scenarios/echo/work.h"

namespace echo {

// Per-connection buffer every server model uses, so memory figures compare like with like.
inline constexpr size_t kBufferSize = 16 * 1024;

// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers): a message and its reply
// must fit one datagram.
inline constexpr size_t kMaxDatagram = 65507;
// The smallest UDP message: its header (the run's nonce and the sequence number) must fit.
inline constexpr size_t kMinDatagram = 16;

inline char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - ('a' - 'A')) : c; }

inline void UpperCase(char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) data[i] = Upper(data[i]);
}

// What a server sends back for the bytes it read (--reply):
//   upper          the bytes with ASCII letters upper-cased (seeds 000-003; the default)
//   same           the bytes unchanged (RFC 862's echo: socat, inetd, most echo examples)
//   prefix:TEXT    TEXT, then the bytes unchanged (seed 004's server: b'Echo=>' + data)
// A prefix goes before the bytes of each read, as seed 004's server does it; so over TCP the load
// generator keeps one message in flight per connection, and a message must reach the server whole
// in one read (it does on loopback for messages up to the server's buffer, less the prefix).
class ReplyMode {
 public:
  enum class Kind { kUpper, kSame, kPrefix };
  static constexpr size_t kMaxPrefix = 256;
  // A buffer that holds any datagram (64 KiB) with any prefix before it: a UDP server's.
  static constexpr size_t kDatagramBuffer = 65536 + kMaxPrefix;

  ReplyMode() = default;
  // "upper", "same" or "prefix:TEXT" (TEXT: 1 to kMaxPrefix bytes). Throws std::invalid_argument.
  static ReplyMode Parse(const std::string& text);
  std::string ToString() const;

  Kind kind() const { return kind_; }
  const std::string& prefix() const { return prefix_; }
  // Bytes a reply adds before what was read: servers read at buf + headroom().
  size_t headroom() const { return prefix_.size(); }
  size_t ReplySize(size_t request) const { return prefix_.size() + request; }

  // Applies the rule to `n` bytes in place (upper: upper-cases; same and prefix: nothing); the
  // prefix, if any, is the caller's to send before them.
  void Transform(char* data, size_t n) const {
    if (kind_ == Kind::kUpper) UpperCase(data, n);
  }
  // The whole reply, in place: `n` bytes were read at buf + headroom(); the reply is the first
  // ReplySize(n) bytes of buf. Only memcpy and plain loops: async-signal-safe.
  size_t Make(char* buf, size_t n) const {
    if (!prefix_.empty()) std::memcpy(buf, prefix_.data(), prefix_.size());
    Transform(buf + prefix_.size(), n);
    return prefix_.size() + n;
  }

 private:
  Kind kind_ = Kind::kUpper;
  std::string prefix_;
};

// The bytes a client sends and expects back. Message `seq` of connection `stream` starts at an
// offset of one pseudo-random buffer holding every byte value, drawn by hashing (salt, stream, seq),
// so a server that drops, repeats or reorders bytes, transforms the wrong ones, or sends one
// connection's reply to another (of this load, or of another load with its own salt) is caught.
// Half the bytes are lower-case letters, so a reply rule applied wrongly shows on every message.
// With work (--work), each message begins with its WorkHeader, and its reply with the header marked
// done (work.h).
class MessagePattern {
 public:
  explicit MessagePattern(size_t size, uint64_t salt = 0, ReplyMode reply = {}, WorkSpec work = {});
  size_t size() const { return size_; }
  size_t reply_size() const { return reply_mode_.ReplySize(size_); }
  const ReplyMode& reply_mode() const { return reply_mode_; }
  const WorkSpec& work() const { return work_; }
  uint64_t salt() const { return salt_; }
  // Message `seq` of connection `stream`: without work, a pointer into the pattern; with work, the
  // message written into `scratch` (size() bytes), its header first.
  const char* Request(uint64_t stream, uint64_t seq, char* scratch) const;
  const char* Request(uint64_t stream, uint64_t seq) const { return request_.data() + Offset(stream, seq); }
  // How many of the `n` bytes at `data`, bytes [from, from + n) of the reply to message (stream,
  // seq), differ from what that reply must be. `unread`, if given, counts the bytes of a header
  // that came back as the request's ("work": a server that echoed it without doing the work).
  uint64_t Wrong(uint64_t stream, uint64_t seq, size_t from, const char* data, size_t n,
                 uint64_t* unread = nullptr) const;

 private:
  static constexpr size_t kOffsets = 65521;  // prime: offsets of two streams rarely coincide
  size_t Offset(uint64_t stream, uint64_t seq) const;
  WorkHeader HeaderOf(uint64_t stream, uint64_t seq) const;
  size_t size_;
  uint64_t salt_;
  ReplyMode reply_mode_;
  WorkSpec work_;
  std::vector<char> request_;
  std::vector<char> body_;  // the request under the reply's rule (upper-cased, or the same)
};

}  // namespace echo
