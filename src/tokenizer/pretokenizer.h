// Byte-level BPE pre-tokenizers: the regexes that cut text into words before merging, one set per
// `tokenizer.ggml.pre` name, as llama.cpp's llm_tokenizer_bpe applies them (src/llama-vocab.cpp).
//
// llama.cpp runs each regex of a set over every piece the previous regex produced, keeping both
// the matches and the unmatched gaps as pieces; a regex never sees past its piece. It evaluates
// them with hand-written splitters (GPT-2, Llama 3) or std::regex over a text whose non-ASCII code
// points are collapsed to one byte per Unicode category. Owl uses PCRE2 (UTF + UCP, JIT) on the
// real text with the regexes rewritten so that the classes mean what llama.cpp's do: \s is its
// whitespace set (not U+180E), \d is ASCII, \p{S} leaves out '~', $ is the end of the piece.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace owl::tokenizer {

// What a `.pre` name selects: the regexes and the vocabulary flags llama.cpp sets with them.
struct PreTokenizerSpec {
  std::string name;                  // the `.pre` value ("" reads as "default")
  std::vector<std::string> regexes;  // llama.cpp's, in order
  bool clean_spaces = true;          // detokenize removes spaces before punctuation
  bool ignore_merges = false;        // a word that is a whole token is not merged
  bool add_bos = false;              // the default of add_bos_token
  bool byte_encode = true;           // GPT-2 byte alphabet (false: raw UTF-8, SPM-style BPE)
  bool escape_whitespaces = false;   // spaces become U+2581 before merging (SPM-style BPE)
  bool no_bos = false;               // the pre-tokenizer unsets the default BOS id (chatglm)
  bool add_sep = false;
};

// The spec for a `.pre` name; an error names an unknown or unsupported one.
core::Result<PreTokenizerSpec> find_pre_tokenizer(std::string_view pre);

// A byte range [begin, end) of the text being split.
struct Span {
  uint32_t begin = 0;
  uint32_t end = 0;
};

// Compiled regexes of one spec. Immutable after make(); split() is safe from many threads.
class PreTokenizer {
 public:
  static core::Result<PreTokenizer> make(const PreTokenizerSpec& spec);
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // Appends the words of `text` (valid UTF-8 without surrogates) to `words`, in order; empty
  // pieces are dropped. `scratch` is reused between calls to avoid allocation.
  void split(std::string_view text, std::vector<Span>& words, std::vector<Span>& scratch) const;

 private:
  struct Compiled;
  PreTokenizer() = default;
  std::vector<std::unique_ptr<Compiled>> regexes_;
};

// A llama.cpp regex rewritten for PCRE2 (see the file comment); exposed for tests.
core::Result<std::string> translate_regex(std::string_view regex);

}  // namespace owl::tokenizer
