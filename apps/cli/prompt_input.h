// Where a command's text comes from, as llama.cpp's tools take it: -p TEXT, -f FILE (- for
// standard input), else standard input when it is not a terminal (a pipe or a redirection).
#pragma once

#include <unistd.h>

#include <string>

#include "core/files.h"
#include "core/result.h"

namespace owl::cli {

struct TextSource {
  const std::string* text = nullptr;  // -p, when given
  std::string file;                   // -f, when given
};

// The text, or an error that says what to give when there is none.
inline core::Result<std::string> read_text_source(const TextSource& source) {
  if (!source.file.empty()) return core::read_input(source.file);
  if (source.text != nullptr) return *source.text;
  constexpr const char* kGive = "give -p TEXT, -f FILE (- for standard input), or pipe it to standard input";
  if (::isatty(STDIN_FILENO)) return core::make_error("no text: {}", kGive);
  auto piped = core::read_input("-");
  if (piped && piped->empty()) return core::make_error("no text: standard input is empty; {}", kGive);
  return piped;
}

}  // namespace owl::cli
