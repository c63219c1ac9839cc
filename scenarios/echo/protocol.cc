#include "scenarios/echo/protocol.h"

#include <random>

namespace echo {

MessagePattern::MessagePattern(size_t size) : size_(size), request_(size + kOffsets), reply_(size + kOffsets) {
  std::mt19937 rng(0x5eed);
  for (size_t i = 0; i < request_.size(); ++i) {
    // Half the bytes are lower-case letters, so upper-casing is exercised on every message.
    const unsigned r = rng();
    request_[i] = (r & 1) ? static_cast<char>('a' + (r >> 1) % 26) : static_cast<char>(r >> 8);
    reply_[i] = Upper(request_[i]);
  }
}

}  // namespace echo
