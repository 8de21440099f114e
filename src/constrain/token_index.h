// The vocabulary as a byte trie, and what each character class of a grammar makes of it.
//
// A token mask walks the trie from the matcher's state (matcher.h). Most of the trie lies under
// one repeated class: inside a JSON string almost every token is made only of string characters,
// and the walk would step every one of them through the grammar to learn that. ClassRuns records,
// once per class and vocabulary, which tokens consist only of that class's characters and which
// subtrees of the trie hold nothing else, so that the walk can take those tokens in one bitset and
// step only through the rest.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "constrain/grammar.h"
#include "tokenizer/tokenizer.h"

namespace owl::constrain {

// A code point being assembled from UTF-8 bytes.
struct Utf8State {
  uint32_t cp = 0;
  uint8_t need = 0;  // continuation bytes still to come
  uint8_t len = 0;   // bytes of the whole sequence
  bool operator==(const Utf8State&) const = default;
};

enum class Utf8Step : uint8_t { kInvalid, kPartial, kComplete };

// One byte of UTF-8 after `u`. kComplete: `cp` is the character and `out` is empty. kPartial:
// `out` holds the partial character and [lo, hi] the characters it can still become.
// kInvalid: the bytes are not the start of valid UTF-8 (overlong, surrogate, beyond U+10FFFF).
inline Utf8Step utf8_step(const Utf8State& u, uint8_t byte, Utf8State& out, uint32_t& cp, uint32_t& lo, uint32_t& hi) {
  if (u.need == 0) {
    if (byte < 0x80) {
      cp = byte;
      out = {};
      return Utf8Step::kComplete;
    }
    if (byte >= 0xC2 && byte <= 0xDF) {
      out = {byte & 0x1Fu, 1, 2};
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      out = {byte & 0x0Fu, 2, 3};
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      out = {byte & 0x07u, 3, 4};
    } else {
      return Utf8Step::kInvalid;
    }
  } else {
    if ((byte & 0xC0) != 0x80) return Utf8Step::kInvalid;
    out = {(u.cp << 6) | (byte & 0x3Fu), static_cast<uint8_t>(u.need - 1), u.len};
    if (out.need == 0) {
      cp = out.cp;
      out = {};
      const uint32_t min = u.len == 2 ? 0x80 : u.len == 3 ? 0x800 : 0x10000;
      if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return Utf8Step::kInvalid;
      return Utf8Step::kComplete;
    }
  }
  const unsigned shift = 6u * out.need;
  lo = std::max(out.cp << shift, out.len == 2 ? 0x80u : out.len == 3 ? 0x800u : 0x10000u);
  hi = std::min((out.cp << shift) | ((1u << shift) - 1), 0x10FFFFu);
  // Surrogates are not characters: "\xED\xA0" can become none.
  if (lo >= 0xD800 && lo <= 0xDFFF) lo = 0xE000;
  return lo <= hi ? Utf8Step::kPartial : Utf8Step::kInvalid;
}

// Tokens made only of one class's characters. A token's length here counts its characters, a
// partial character at its end included when every character it can become is in the class.
struct ClassRuns {
  // [n_nodes] for node i: the most characters of a path in i's subtree when every node of the
  // subtree (its path from the root) is made of the class's characters; -1 otherwise.
  std::vector<int16_t> subtree_chars;
  // [n_words] bitset over the vocabulary: the tokens made of the class's characters.
  std::vector<uint64_t> tokens;
  // Those of them with at least 2 characters, the longest first, and [max_chars + 1] how many of
  // them have more than n characters: a run bounded to n characters takes the first
  // longer_than[n] back out of `tokens`.
  std::vector<int32_t> long_tokens;
  std::vector<uint32_t> longer_than;
  int16_t max_chars = 0;
};

// The vocabulary as a byte trie in depth-first order: node i's subtree is [i, end[i]).
// Thread-safe: the trie is immutable; runs() caches behind a mutex.
class TokenIndex {
 public:
  explicit TokenIndex(const tokenizer::Tokenizer& tokenizer);

  int32_t n_vocab() const { return n_vocab_; }
  size_t n_nodes() const { return byte_.size(); }
  std::string_view piece(int32_t token) const;
  bool is_eog(int32_t token) const;
  const std::vector<int32_t>& eog() const { return eog_; }

  // The class's runs over this vocabulary, computed at the first call for an equal class.
  std::shared_ptr<const ClassRuns> runs(const CharClass& cls) const;

  // Trie arrays (node 0 is the root, with no byte).
  std::vector<uint8_t> byte_;
  std::vector<uint16_t> depth_;
  std::vector<uint32_t> end_;
  std::vector<uint32_t> token_begin_;  // tokens ending at node i: tokens_[token_begin_[i] .. token_begin_[i+1])
  std::vector<int32_t> tokens_;
  size_t max_depth_ = 0;

 private:
  ClassRuns make_runs(const CharClass& cls) const;

  int32_t n_vocab_ = 0;
  std::string pieces_;
  std::vector<uint32_t> piece_offsets_;
  std::vector<int32_t> eog_;
  std::vector<uint8_t> eog_flag_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::shared_ptr<const ClassRuns>> runs_;
};

}  // namespace owl::constrain
