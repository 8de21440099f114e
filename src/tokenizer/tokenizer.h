// Tokenizers that give the token ids llama.cpp gives, byte for byte, built from a GGUF file's
// `tokenizer.ggml.*` metadata: SentencePiece-style BPE by scores (`llama`: Llama 2, Mistral,
// Phi-3, Gemma, TinyStories) with byte fallback, and byte-level BPE by merge ranks (`gpt2`:
// GPT-2, Llama 3, Qwen, DeepSeek, ...) with the pre-tokenizer regexes of `tokenizer.ggml.pre`.
// Reference: llama.cpp src/llama-vocab.cpp and src/unicode.cpp; the rules are restated where
// they are implemented.
//
// Threading: a Tokenizer is immutable after load and every method is safe to call from many
// threads at once (the BPE word cache inside is synchronized). Copies share the same state.
// A Detokenizer is one stream: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace owl::gguf {
class GgufFile;
}

namespace owl::tokenizer {

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

enum class VocabType { kSpm, kBpe };

// Token attributes: bit flags, llama.cpp's llama_token_attr.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,  // <s>, <|im_end|>: text form only with parse_special / unparse_special
  kAttrUserDefined = 1u << 4,  // always matched as a whole in text, printed verbatim
  kAttrByte = 1u << 5,         // <0xNN>
  kAttrLstrip = 1u << 7,       // eats whitespace on its left when matched in text
  kAttrRstrip = 1u << 8,       // eats whitespace on its right
};

// The tokenizer half of a GGUF file's metadata, as read; the loader applies llama.cpp's defaults.
struct VocabSpec {
  std::string model;                 // tokenizer.ggml.model: "llama" (SPM), "gpt2", "gemma4" (BPE)
  std::string pre;                   // tokenizer.ggml.pre ("" when absent)
  std::string name;                  // general.name (llama.cpp keys a few attribute fixes on it)
  std::string architecture;          // general.architecture
  std::vector<std::string> tokens;   // tokenizer.ggml.tokens [n_vocab]
  std::vector<float> scores;         // tokenizer.ggml.scores [n_vocab], empty when absent
  std::vector<int32_t> token_types;  // tokenizer.ggml.token_type [n_vocab] (GGUF 0..6), or empty
  std::vector<std::string> merges;   // tokenizer.ggml.merges "left right", rank = index (BPE)
  // Special token ids present in the file (a value outside the vocabulary is ignored).
  std::optional<int64_t> bos, eos, eot, eom, unk, sep, pad, mask;
  std::optional<int64_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

// Reads the `tokenizer.ggml.*` keys; an error names the key and what was found.
core::Result<VocabSpec> read_vocab_spec(const gguf::GgufFile& file);

// Ids of the special tokens; kNoToken when the model has none.
struct SpecialTokens {
  TokenId bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken;
  TokenId unk = kNoToken, sep = kNoToken, pad = kNoToken, mask = kNoToken;
  TokenId nl = kNoToken;  // the token of "\n"
  TokenId fim_pre = kNoToken, fim_suf = kNoToken, fim_mid = kNoToken;
  TokenId fim_pad = kNoToken, fim_rep = kNoToken, fim_sep = kNoToken;
};

struct TokenizeOptions {
  bool add_special = true;     // BOS / EOS where the model asks for them (add_bos_token, ...)
  bool parse_special = false;  // control tokens written in the text ("<|im_end|>") become their ids
};

struct DetokenizeOptions {
  bool remove_special = false;   // drop a leading BOS / trailing EOS that the model adds itself
  bool unparse_special = false;  // print control tokens as their text (otherwise nothing)
};

class Tokenizer {
 public:
  static core::Result<Tokenizer> make(VocabSpec spec);
  static core::Result<Tokenizer> load(const gguf::GgufFile& file);
  static core::Result<Tokenizer> load(const std::string& gguf_path);

  // Appends the ids of `text` to `out`. Any bytes are accepted (invalid UTF-8 included).
  void tokenize(std::string_view text, std::vector<TokenId>& out, const TokenizeOptions& options = {}) const;
  std::vector<TokenId> tokenize(std::string_view text, const TokenizeOptions& options = {}) const;

  // The bytes token `id` stands for (not always valid UTF-8 alone: byte tokens, split characters).
  // Control and unknown tokens give "" unless `special`. The view lives as long as the Tokenizer.
  std::string_view token_to_piece(TokenId id, bool special = false) const;
  // Whole-sequence text, as llama.cpp's llama_detokenize: the space SentencePiece puts before the
  // first word is removed when the sequence starts with it (not after a removed BOS), and BPE
  // vocabularies with clean_spaces undo " ," " ." " 's" and friends.
  void detokenize(std::span<const TokenId> ids, std::string& out, const DetokenizeOptions& options = {}) const;
  std::string detokenize(std::span<const TokenId> ids, const DetokenizeOptions& options = {}) const;

  VocabType type() const;
  const std::string& model() const;  // tokenizer.ggml.model
  const std::string& pre() const;    // the pre-tokenizer in use ("default" for SPM)
  int32_t n_vocab() const;
  bool valid(TokenId id) const { return id >= 0 && id < n_vocab(); }
  const SpecialTokens& special() const;
  TokenId bos() const { return special().bos; }
  TokenId eos() const { return special().eos; }
  bool add_bos() const;
  bool add_eos() const;
  bool add_space_prefix() const;
  // End of generation: EOS, EOT, EOM and the end-of-turn tokens llama.cpp recognises by text.
  bool is_eog(TokenId id) const;
  bool is_control(TokenId id) const { return valid(id) && (token_attr(id) & kAttrControl) != 0; }

  std::string_view token_text(TokenId id) const;  // as stored in the vocabulary ("▁the", "Ġthe")
  float token_score(TokenId id) const;
  uint32_t token_attr(TokenId id) const;         // TokenAttr bits
  TokenId find_token(std::string_view text) const;  // kNoToken when absent

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Turns a stream of generated tokens into text that is always whole UTF-8: bytes of a character
// split across tokens are held back until the character completes. Concatenating every push()
// and the final finish() gives the bytes of the tokens' pieces (no clean-up of spaces: what
// llama.cpp's server streams).
class Detokenizer {
 public:
  struct Options {
    bool special = false;             // print control tokens as their text
    bool strip_leading_space = false;  // SentencePiece: drop the first piece's leading space
  };
  explicit Detokenizer(Tokenizer tokenizer) : Detokenizer(std::move(tokenizer), Options{}) {}
  Detokenizer(Tokenizer tokenizer, Options options);

  // Text completed by `id` (possibly empty). The view is valid until the next call.
  std::string_view push(TokenId id);
  // Whatever is still held (an incomplete character at the end), then resets the stream.
  std::string finish();
  // Bytes held back waiting for the rest of a character.
  size_t pending() const { return buffer_.size() - emitted_; }

 private:
  Tokenizer tokenizer_;
  Options options_;
  bool first_ = true;
  std::string buffer_;
  size_t emitted_ = 0;
};

// Bytes of `text` that end in a complete UTF-8 sequence: the length of the longest prefix that
// does not stop inside a character (a malformed sequence counts as complete).
size_t complete_utf8_prefix(std::string_view text);

}  // namespace owl::tokenizer
