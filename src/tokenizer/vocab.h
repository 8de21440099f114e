// The tokenizer's internal state (Tokenizer::Impl) and the pieces that work on it. Not part of
// the public API: engine and server code include tokenizer.h only.
#pragma once

#include <array>
#include <deque>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/token_map.h"
#include "tokenizer/tokenizer.h"

namespace owl::tokenizer {

struct TokenData {
  uint32_t text_offset = 0;  // into Impl::text_arena
  uint32_t text_size = 0;
  float score = 0.0f;
  uint32_t attr = kAttrNormal;
};

// A piece of the input after special tokens are cut out: raw text, or one special token.
struct Fragment {
  TokenId token = kNoToken;  // kNoToken: raw text [begin, end)
  uint32_t begin = 0;
  uint32_t end = 0;
};

// Finds special tokens in text the way llama.cpp's tokenizer_st_partition does: tokens are taken
// longest first (ties by id), each one cutting every remaining raw piece at its leftmost
// non-overlapping occurrences; LSTRIP/RSTRIP tokens also eat the ASCII whitespace next to them.
// Control and unknown tokens take part only with parse_special; user-defined ones always.
class SpecialMatcher {
 public:
  void build(const std::vector<TokenData>& tokens, std::string_view text_arena);
  void partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
  bool empty() const { return token_of_rank_.empty(); }

 private:
  struct Node {
    int32_t first_child = -1;
    int32_t next_sibling = -1;
    int32_t token = -1;  // rank of the special token ending here
    uint8_t byte = 0;
  };
  std::vector<Node> nodes_;                 // nodes_[0] is the root
  std::array<int32_t, 256> root_child_{};  // first byte -> node
  std::vector<TokenId> token_of_rank_;      // rank (order of processing) -> token id
  std::vector<uint32_t> lengths_;           // rank -> text length
  std::vector<uint32_t> attrs_;             // rank -> attributes
};

// Words already tokenized: word bytes -> token ids. Safe from many threads: the entries are in
// shards with their own lock. Bounded; a full shard is cleared. Only short words are kept.
class WordCache {
 public:
  static constexpr size_t kMaxWord = 128;
  // Appends the cached ids of `word` to `out`; false when absent.
  bool find(std::string_view word, std::vector<TokenId>& out) const;
  void insert(std::string_view word, const std::vector<TokenId>& ids) const;

 private:
  struct Shard {
    std::mutex mutex;
    StringMap index;              // word -> entry number
    std::string keys;             // word bytes; capacity fixed at first use (index points here)
    std::vector<uint32_t> spans;  // per entry: offset into ids, count
    std::vector<TokenId> ids;
  };
  static constexpr size_t kShards = 16;
  static constexpr size_t kShardBytes = size_t{1} << 20;
  mutable std::array<Shard, kShards> shards_;
};

// Byte-level BPE by merge rank (llama.cpp's llm_tokenizer_bpe_session). Symbols are interned
// strings: ids below n_vocab are the tokens themselves, ids above are strings that occur only in
// merges. Words already encoded are cached.
class BpeModel {
 public:
  struct Options {
    bool byte_encode = true;     // symbols start as single bytes in GPT-2's alphabet
    bool ignore_merges = false;  // a word that is one token is taken whole
    bool newline_words = false;  // gemma4: a word of only '\n' that is one token is taken whole
  };
  struct Symbol {
    int32_t sid;     // interned string, -1 when the string is unknown (never merges)
    uint32_t begin;  // byte range in the word
    uint32_t size;   // 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Bigram {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t merged;  // sid of the concatenation
    uint32_t size;
  };
  // Buffers reused across the words of one call.
  struct Scratch {
    std::vector<Symbol> symbols;
    std::vector<Bigram> queue;
    std::string encoded;
    std::vector<TokenId> ids;
  };

  static core::Result<std::unique_ptr<BpeModel>> make(std::string_view text_arena, const std::vector<TokenData>& tokens,
                                                      const StringMap& token_map,
                                                      const std::vector<std::string>& merges, Options options);

  // Appends the tokens of one pre-tokenized word (raw bytes, before the byte-level encoding).
  void encode_word(std::string_view word, std::vector<TokenId>& out, Scratch& scratch) const;
  size_t n_merges() const { return n_merges_; }

 private:
  BpeModel() = default;
  void merge_word(std::string_view word, std::vector<TokenId>& out, Scratch& scratch) const;
  void push_bigram(Scratch& s, int32_t left, int32_t right) const;
  void append_fallback(std::string_view bytes, std::vector<TokenId>& out) const;
  int32_t intern(std::string_view text);

  Options options_;
  int32_t n_vocab_ = 0;
  size_t n_merges_ = 0;
  const StringMap* token_map_ = nullptr;  // owned by Impl, which owns this model
  std::deque<std::string> extra_strings_;  // merge strings that are not tokens (stable addresses)
  StringMap symbols_;                      // every interned string -> sid
  PairMap pairs_;
  std::array<int32_t, 256> byte_sid_{};      // byte_encode: sid of each byte's character
  std::array<TokenId, 256> fallback_byte_{};  // token of a lone byte when a symbol is not a token

  mutable WordCache cache_;
};

struct Tokenizer::Impl {
  VocabType type = VocabType::kSpm;
  std::string model;
  std::string pre;
  std::string text_arena;  // every token's text, back to back
  std::vector<TokenData> tokens;
  StringMap token_map;     // text -> id
  std::string piece_arena;              // token_to_piece(id, special = true), back to back
  std::vector<uint32_t> piece_offsets;  // [n_vocab + 1]
  std::vector<uint8_t> eog;             // [n_vocab]
  SpecialTokens special;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;
  bool escape_whitespaces = true;  // SPM and SPM-style BPE: ' ' is stored as U+2581
  uint32_t max_token_len = 0;
  SpecialMatcher specials;
  std::array<TokenId, 256> byte_tokens{};  // SPM byte fallback per byte
  // SPM: no token has U+2581 after another character, so merges never cross the point before a
  // U+2581 that follows another character: such words merge alone and can be cached.
  bool spm_words = false;
  WordCache spm_cache;
  std::optional<PreTokenizer> pretokenizer;  // BPE
  std::unique_ptr<BpeModel> bpe;             // BPE

  std::string_view text(TokenId id) const {
    const TokenData& t = tokens[static_cast<size_t>(id)];
    return std::string_view(text_arena).substr(t.text_offset, t.text_size);
  }
  std::string_view piece(TokenId id) const {
    const size_t b = piece_offsets[static_cast<size_t>(id)];
    return std::string_view(piece_arena).substr(b, piece_offsets[static_cast<size_t>(id) + 1] - b);
  }
};

// Builds the state from metadata with llama.cpp's defaults and per-model fixes (vocab.cpp).
core::Result<std::shared_ptr<Tokenizer::Impl>> make_impl(VocabSpec spec);

// Buffers of tokenize_spm, reused across the pieces of one call.
struct SpmScratch {
  struct Symbol {
    uint32_t begin;  // byte range in the piece
    uint32_t size;   // 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Bigram {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;
  };
  std::vector<Symbol> symbols;
  std::vector<Bigram> queue;
  std::vector<TokenId> ids;
};

// SentencePiece-style merging by score of one piece whose spaces are already U+2581 (spm.cpp).
void tokenize_spm(const Tokenizer::Impl& impl, std::string_view escaped, std::vector<TokenId>& out,
                  SpmScratch& scratch);
// Whether no token holds U+2581 after another character (then Impl::spm_words can be set).
bool spm_merges_stay_in_words(const Tokenizer::Impl& impl);

}  // namespace owl::tokenizer
