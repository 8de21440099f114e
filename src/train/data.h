// Training examples from JSONL, one example a line, in the formats people already have:
//   {"messages": [{"role": ..., "content": ...}, ...]}  rendered through the chat template; loss on
//                                                     the assistant turns (their end-of-turn too)
//   {"prompt": ..., "completion": ...}                loss on the completion (+ EOS)
//   {"text": ...}                                     loss on every token (+ EOS)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

namespace owl::train {

struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> target;  // [tokens]: 1 where the token is predicted with loss
  int64_t line = 0;             // 1-based line in its file

  int64_t n_targets() const;
};

struct DataOptions {
  int64_t n_ctx = 512;           // the longest example, in tokens
  bool truncate = false;         // cut longer examples to n_ctx (counted) instead of refusing them
  bool train_on_prompt = false;  // loss on the prompt of prompt/completion examples too
};

struct Dataset {
  std::vector<Example> examples;
  int64_t n_truncated = 0;
  int64_t n_tokens = 0;
  int64_t n_targets = 0;
};

// The chat template for messages examples, asked for only when a line has messages.
using TemplateSource = std::function<core::Result<const tmpl::Template*>()>;

// Reads and tokenizes every line (blank lines are skipped). A bad line is an error naming the
// file, the line number and the field; so is an example longer than n_ctx without truncate, or
// one with nothing to learn.
core::Result<Dataset> load_dataset(const std::string& path, const tokenizer::Tokenizer& tok,
                                   const TemplateSource& chat_template, const DataOptions& options);

// The same over JSONL text in memory; `path` names it in errors.
core::Result<Dataset> parse_dataset(std::string_view text, const std::string& path, const tokenizer::Tokenizer& tok,
                                    const TemplateSource& chat_template, const DataOptions& options);

}  // namespace owl::train
