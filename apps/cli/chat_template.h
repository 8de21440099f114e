// The chat template `owl chat` and `owl serve` use: a file given with --chat-template, else the
// model's own (tokenizer.chat_template), else the built-in format named by --chat-format.
#pragma once

#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/files.h"
#include "core/result.h"
#include "gguf/gguf.h"
#include "gguf/keys.h"
#include "template/chat.h"

namespace owl::cli {

// `command` names the command in the notice printed when the built-in format is used.
inline core::Result<std::string> choose_chat_template(const std::string& file, const std::string& format,
                                                       const gguf::GgufFile& model, const char* command) {
  if (!file.empty()) return core::read_file(file);
  if (const gguf::Value* v = model.find(gguf::keys::kTokenizerChatTemplate); v && v->as_string()) return *v->as_string();
  const std::string* builtin = tmpl::builtin_format(format);
  if (builtin == nullptr) {
    return core::make_error("unknown chat format '{}' (one of: {})", format, fmt::join(tmpl::builtin_format_names(), ", "));
  }
  fmt::print(stderr, "{}: the model has no chat template; using the {} format\n", command, format);
  return *builtin;
}

// choose_chat_template, parsed; a syntax error names where the template came from.
inline core::Result<tmpl::Template> load_chat_template(const std::string& file, const std::string& format,
                                                      const gguf::GgufFile& model, const char* command) {
  auto source = choose_chat_template(file, format, model, command);
  if (!source) return source.error();
  auto parsed = tmpl::Template::parse(*source);
  if (parsed) return parsed;
  const bool own = file.empty() && model.find(gguf::keys::kTokenizerChatTemplate) != nullptr;
  const std::string origin = !file.empty() ? "--chat-template " + file
                             : own         ? model.path() + ": " + std::string(gguf::keys::kTokenizerChatTemplate)
                                           : "built-in format " + format;
  return core::make_error("{}: {}", origin, parsed.message());
}

}  // namespace owl::cli
