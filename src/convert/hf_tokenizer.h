// Tokenizers between Hugging Face's tokenizer.json / tokenizer_config.json and GGUF's
// tokenizer.* metadata (internal to owl_convert).
//  - byte-level BPE (no byte_fallback) <-> tokenizer.ggml.model "gpt2": tokens, merges, and the
//    pre-tokenizer name (tokenizer.ggml.pre) recognised from the pre_tokenizer regexes;
//  - BPE with byte_fallback (SentencePiece models such as Llama 2) <-> "llama": scores follow
//    the vocabulary order (SentencePiece BPE orders pieces by score), merges are rebuilt from
//    the scores on export.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "gguf/gguf.h"

namespace owl::convert::detail {

struct HfTokenizerInfo {
  std::string model;  // "llama" or "gpt2"
  std::string pre;
  bool chat_template = false;
  int64_t n_vocab = 0;
};

// Metadata entries for the GGUF file; config.json ids fill in missing special tokens.
core::Result<std::vector<gguf::MetadataEntry>> read_hf_tokenizer(const std::string& dir, int64_t config_bos,
                                                                 int64_t config_eos, HfTokenizerInfo* info);

core::Status write_hf_tokenizer(const gguf::GgufFile& file, const std::string& dir);

}  // namespace owl::convert::detail
