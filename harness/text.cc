#include "harness/text.h"

#include <cstdint>
#include <cstdio>
#include <iostream>

namespace harness {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0.
size_t Utf8SequenceLength(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) return 1;
  size_t length = 0;
  uint8_t low = 0x80, high = 0xBF;  // the allowed range of the second byte (RFC 3629, table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF)
    length = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;
    if (b0 == 0xED) high = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;
    if (b0 == 0xF4) high = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

bool IsUtf8(std::string_view text) {
  while (!text.empty()) {
    const size_t n = Utf8SequenceLength(text);
    if (n == 0) return false;
    text.remove_prefix(n);
  }
  return true;
}

std::string Printable(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    const size_t n = Utf8SequenceLength(text);
    const auto c = static_cast<uint8_t>(text[0]);
    if (n == 1 && c == '\n') {
      out += "\\n";
    } else if (n == 1 && c == '\t') {
      out += "\\t";
    } else if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7F))) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out.append(text.substr(0, n));
    }
    text.remove_prefix(n == 0 ? 1 : n);
  }
  return out;
}

std::string JsonText(const nlohmann::json& j, int indent) {
  try {
    return j.dump(indent);
  } catch (const nlohmann::json::type_error&) {  // 316: a string that is not UTF-8
    static bool warned = false;
    if (!warned) {
      warned = true;
      std::cerr << "harness: warning: text that is not UTF-8 (a name from outside) was written with each bad byte "
                   "replaced by U+FFFD\n";
    }
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

std::string BadArgument(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!IsUtf8(arg)) return "argument " + std::to_string(i) + " is not UTF-8 text: '" + Printable(arg) + "'";
    if (arg.empty()) return "argument " + std::to_string(i) + " is empty (an unset variable?)";
    const size_t equals = arg.find('=');
    if (arg.rfind("--", 0) == 0 && equals != std::string_view::npos && equals + 1 == arg.size()) {
      return std::string(arg) + " has no value after the '=': give one, or leave the option out";
    }
  }
  return "";
}

}  // namespace harness
