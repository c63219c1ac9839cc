#include "scenarios/echo/protocol.h"

#include <random>
#include <stdexcept>

namespace echo {

ReplyMode ReplyMode::Parse(const std::string& text) {
  ReplyMode mode;
  if (text == "upper") return mode;
  if (text == "same") {
    mode.kind_ = Kind::kSame;
    return mode;
  }
  const std::string tag = "prefix:";
  if (text.rfind(tag, 0) == 0) {
    mode.kind_ = Kind::kPrefix;
    mode.prefix_ = text.substr(tag.size());
    if (mode.prefix_.empty() || mode.prefix_.size() > kMaxPrefix) {
      throw std::invalid_argument("a prefix is 1 to " + std::to_string(kMaxPrefix) + " bytes: '" + text + "'");
    }
    return mode;
  }
  throw std::invalid_argument("must be upper, same or prefix:TEXT: '" + text + "'");
}

std::string ReplyMode::ToString() const {
  switch (kind_) {
    case Kind::kUpper:
      return "upper";
    case Kind::kSame:
      return "same";
    case Kind::kPrefix:
      return "prefix:" + prefix_;
  }
  return "";
}

MessagePattern::MessagePattern(size_t size, uint64_t salt, ReplyMode reply, WorkSpec work)
    : size_(size),
      salt_(salt),
      reply_mode_(std::move(reply)),
      work_(std::move(work)),
      request_(size + kOffsets),
      body_(size + kOffsets) {
  if (!work_.empty() && size_ < WorkHeader::kSize) {
    throw std::invalid_argument("a message with work is at least " + std::to_string(WorkHeader::kSize) + " bytes");
  }
  std::mt19937 rng(0x5eed);
  for (size_t i = 0; i < request_.size(); ++i) {
    const unsigned r = rng();
    request_[i] = (r & 1) ? static_cast<char>('a' + (r >> 1) % 26) : static_cast<char>(r >> 8);
  }
  body_ = request_;
  reply_mode_.Transform(body_.data(), body_.size());
}

WorkHeader MessagePattern::HeaderOf(uint64_t stream, uint64_t seq) const {
  const Work w = work_.Of(stream, seq);
  WorkHeader h;
  h.length = static_cast<uint32_t>(size_);
  h.cpu_ns = w.cpu_ns;
  h.wait_ns = w.wait_ns;
  return h;
}

const char* MessagePattern::Request(uint64_t stream, uint64_t seq, char* scratch) const {
  if (work_.empty()) return Request(stream, seq);
  std::memcpy(scratch, Request(stream, seq), size_);
  HeaderOf(stream, seq).WriteRequest(scratch);
  return scratch;
}

uint64_t MessagePattern::Wrong(uint64_t stream, uint64_t seq, size_t from, const char* data, size_t n,
                               uint64_t* unread) const {
  uint64_t wrong = 0;
  const std::string& prefix = reply_mode_.prefix();
  for (; n > 0 && from < prefix.size(); ++from, ++data, --n) wrong += *data != prefix[from];
  if (n == 0) return wrong;
  if (!work_.empty() && from - prefix.size() < WorkHeader::kSize) {
    // The header's reply: "done", then the request's fields, under the rule.
    char done[WorkHeader::kSize], echoed[WorkHeader::kSize];
    const WorkHeader h = HeaderOf(stream, seq);
    h.WriteReply(done);
    h.WriteRequest(echoed);
    reply_mode_.Transform(done, sizeof done);
    reply_mode_.Transform(echoed, sizeof echoed);
    for (; n > 0 && from - prefix.size() < WorkHeader::kSize; ++from, ++data, --n) {
      const size_t at = from - prefix.size();
      if (*data == done[at]) continue;
      ++wrong;
      if (unread && at < 4 && *data == echoed[at]) ++*unread;
    }
    if (n == 0) return wrong;
  }
  const char* expected = body_.data() + Offset(stream, seq) + (from - prefix.size());
  if (std::memcmp(data, expected, n) == 0) return wrong;
  for (size_t i = 0; i < n; ++i) wrong += data[i] != expected[i];
  return wrong;
}

// splitmix64's finaliser: every input bit moves every output bit, so consecutive messages and
// neighbouring connections land at unrelated offsets.
size_t MessagePattern::Offset(uint64_t stream, uint64_t seq) const {
  uint64_t z = salt_ + stream * 0x9e3779b97f4a7c15ULL + seq * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<size_t>(z % kOffsets);
}

}  // namespace echo
