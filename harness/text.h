// Bytes from outside (arguments, file names, other processes' names, files read back) on their way
// to a terminal or a results file. A results file is JSON, which holds UTF-8 text only, and a
// message is one line: these helpers say whether bytes are fit for each, make them fit, and turn a
// JSON document into text without ever failing on a byte.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace harness {

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool IsUtf8(std::string_view text);

// `text` as one printable line: control bytes (a newline, an escape, DEL) and bytes that are not
// UTF-8 written as \n, \t, \xHH; a backslash stays as it is. Valid UTF-8 letters pass unchanged.
std::string Printable(std::string_view text);

// The JSON text of `j` (indented by `indent`, or on one line when -1). A string that is not UTF-8
// (a process named with any bytes its owner chose) has each bad byte replaced by U+FFFD instead of
// throwing, and the first time this happens in a process a warning says so on stderr.
std::string JsonText(const nlohmann::json& j, int indent = -1);

// Why the command line cannot be read as the user meant it, or "": an argument that is not UTF-8
// (it could reach no results file), an empty argument (an unset shell variable: `--out "$OUT"`),
// or an option given as `--NAME=` with nothing after the '=' (a command-line parser would take the
// next argument as its value: `merge A.json --out= B.json` would overwrite B). Checked for every
// subcommand before any option is parsed.
std::string BadArgument(int argc, const char* const* argv);

}  // namespace harness
