#include "scenarios/echo/protocol.h"

#include <random>

namespace echo {

MessagePattern::MessagePattern(size_t size, uint64_t salt)
    : size_(size), salt_(salt), request_(size + kOffsets), reply_(size + kOffsets) {
  std::mt19937 rng(0x5eed);
  for (size_t i = 0; i < request_.size(); ++i) {
    // Half the bytes are lower-case letters, so upper-casing is exercised on every message.
    const unsigned r = rng();
    request_[i] = (r & 1) ? static_cast<char>('a' + (r >> 1) % 26) : static_cast<char>(r >> 8);
    reply_[i] = Upper(request_[i]);
  }
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
