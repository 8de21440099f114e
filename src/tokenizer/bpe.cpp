// Byte-level BPE by merge rank, as llama.cpp's llm_tokenizer_bpe_session does it for one word:
// 1. the word's bytes become characters of GPT-2's byte alphabet (one symbol per byte); SPM-style
//    BPE (gemma4) keeps the UTF-8 characters instead;
// 2. with ignore_merges, a word that is a token is that token;
// 3. adjacent pairs listed in tokenizer.ggml.merges enter a queue by rank, lowest first, ties to
//    the leftmost pair; the best is merged while both halves are unchanged, and the merged
//    symbol's pairs with its neighbours enter the queue;
// 4. each final symbol is its token, or, when not a token, one token per byte of its encoded text
//    that is a one-byte token (<0xNN> tokens for SPM-style BPE).
// Symbols are interned strings, so a pair lookup is one hash probe on two integers.
#include <algorithm>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace owl::tokenizer {

using core::make_error;
using core::Result;

int32_t BpeModel::intern(std::string_view text) {
  const int32_t found = symbols_.find(text);
  if (found >= 0) return found;
  extra_strings_.emplace_back(text);
  const int32_t sid = n_vocab_ + static_cast<int32_t>(extra_strings_.size() - 1);
  symbols_.insert(extra_strings_.back(), sid);
  return sid;
}

Result<std::unique_ptr<BpeModel>> BpeModel::make(std::string_view text_arena, const std::vector<TokenData>& tokens,
                                                 const StringMap& token_map, const std::vector<std::string>& merges,
                                                 Options options) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->options_ = options;
  m->n_vocab_ = static_cast<int32_t>(tokens.size());
  m->n_merges_ = merges.size();
  m->token_map_ = &token_map;
  m->symbols_.reserve(tokens.size() + merges.size() / 8);
  for (size_t i = 0; i < tokens.size(); ++i) {
    m->symbols_.insert(text_arena.substr(tokens[i].text_offset, tokens[i].text_size), static_cast<int32_t>(i));
  }
  m->pairs_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& line = merges[rank];
    // llama.cpp splits at the first space after the first byte; a line without one never matches.
    const size_t space = line.size() > 1 ? line.find(' ', 1) : std::string::npos;
    if (space == std::string::npos) continue;
    const std::string_view left = std::string_view(line).substr(0, space);
    const std::string_view right = std::string_view(line).substr(space + 1);
    if (left.empty() || right.empty()) continue;
    joined.assign(left);
    joined += right;
    const int32_t l = m->intern(left);
    const int32_t r = m->intern(right);
    const int32_t merged = m->intern(joined);
    if (merged < 0 || static_cast<size_t>(merged) >= (size_t{1} << 31) - 1) {
      return make_error("tokenizer: too many BPE symbols at merge {}", rank);
    }
    m->pairs_.insert(l, r, {static_cast<int32_t>(rank), merged});
  }
  const ByteAlphabet& alphabet = byte_alphabet();
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string_view encoded(alphabet.utf8[b], alphabet.utf8_len[b]);
    m->byte_sid_[static_cast<size_t>(b)] = m->symbols_.find(encoded);
    if (options.byte_encode) {
      const char c = static_cast<char>(b);
      m->fallback_byte_[static_cast<size_t>(b)] = token_map.find(std::string_view(&c, 1));
    } else {
      const char name[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      m->fallback_byte_[static_cast<size_t>(b)] = token_map.find(std::string_view(name, 6));
    }
  }
  return m;
}

namespace {

bool lower_priority(const BpeModel::Bigram& a, const BpeModel::Bigram& b) {
  return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
}

}  // namespace

void BpeModel::push_bigram(Scratch& s, int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return;
  const Symbol& l = s.symbols[static_cast<size_t>(left)];
  const Symbol& r = s.symbols[static_cast<size_t>(right)];
  if (l.sid < 0 || r.sid < 0) return;
  const PairMap::Value v = pairs_.find(l.sid, r.sid);
  if (v.rank < 0) return;
  s.queue.push_back({v.rank, left, right, v.merged, l.size + r.size});
  std::push_heap(s.queue.begin(), s.queue.end(), lower_priority);
}

void BpeModel::append_fallback(std::string_view bytes, std::vector<TokenId>& out) const {
  const ByteAlphabet& alphabet = byte_alphabet();
  for (char c : bytes) {
    const uint8_t b = static_cast<uint8_t>(c);
    if (!options_.byte_encode) {
      if (fallback_byte_[b] != kNoToken) out.push_back(fallback_byte_[b]);
      continue;
    }
    for (uint8_t k = 0; k < alphabet.utf8_len[b]; ++k) {
      const TokenId id = fallback_byte_[static_cast<uint8_t>(alphabet.utf8[b][k])];
      if (id != kNoToken) out.push_back(id);
    }
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<TokenId>& out, Scratch& s) const {
  if (word.empty()) return;
  if (options_.ignore_merges || options_.newline_words) {
    const bool whole = options_.ignore_merges || word.find_first_not_of('\n') == std::string_view::npos;
    if (whole) {
      std::string_view encoded = word;
      if (options_.byte_encode) {
        const ByteAlphabet& alphabet = byte_alphabet();
        s.encoded.clear();
        for (char c : word) s.encoded.append(alphabet.utf8[static_cast<uint8_t>(c)], alphabet.utf8_len[static_cast<uint8_t>(c)]);
        encoded = s.encoded;
      }
      const TokenId id = token_map_->find(encoded);
      if (id != kNoToken) {
        out.push_back(id);
        return;
      }
    }
  }
  s.symbols.clear();
  s.queue.clear();
  for (size_t offset = 0; offset < word.size();) {
    size_t size = 1;
    int32_t sid = -1;
    if (options_.byte_encode) {
      sid = byte_sid_[static_cast<uint8_t>(word[offset])];
    } else {
      size = std::min(utf8_seq_len(static_cast<uint8_t>(word[offset])), word.size() - offset);
      sid = symbols_.find(word.substr(offset, size));
    }
    const int32_t index = static_cast<int32_t>(s.symbols.size());
    offset += size;
    s.symbols.push_back({sid, static_cast<uint32_t>(offset - size), static_cast<uint32_t>(size), index - 1,
                         offset == word.size() ? -1 : index + 1});
  }
  for (int32_t i = 1; i < static_cast<int32_t>(s.symbols.size()); ++i) push_bigram(s, i - 1, i);

  while (!s.queue.empty()) {
    std::pop_heap(s.queue.begin(), s.queue.end(), lower_priority);
    const Bigram bigram = s.queue.back();
    s.queue.pop_back();
    Symbol& left = s.symbols[static_cast<size_t>(bigram.left)];
    Symbol& right = s.symbols[static_cast<size_t>(bigram.right)];
    // Stale when either half changed since the pair was queued (llama.cpp compares the texts;
    // symbols only grow, so comparing lengths is the same test).
    if (left.size == 0 || right.size == 0 || left.size + right.size != bigram.size) continue;
    left.size += right.size;
    left.sid = bigram.merged;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) s.symbols[static_cast<size_t>(right.next)].prev = bigram.left;
    push_bigram(s, left.prev, bigram.left);
    push_bigram(s, bigram.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = s.symbols[static_cast<size_t>(i)].next) {
    const Symbol& sym = s.symbols[static_cast<size_t>(i)];
    if (sym.sid >= 0 && sym.sid < n_vocab_) {
      out.push_back(sym.sid);
    } else {
      append_fallback(word.substr(sym.begin, sym.size), out);
    }
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<TokenId>& out, Scratch& s) const {
  if (word.size() > WordCache::kMaxWord || word.empty()) {
    merge_word(word, out, s);
    return;
  }
  if (cache_.find(word, out)) return;
  s.ids.clear();
  merge_word(word, s.ids, s);
  out.insert(out.end(), s.ids.begin(), s.ids.end());
  cache_.insert(word, s.ids);
}

bool WordCache::find(std::string_view word, std::vector<TokenId>& out) const {
  Shard& shard = shards_[hash_bytes(word.data(), word.size()) % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  const int32_t entry = shard.index.find(word);
  if (entry < 0) return false;
  const uint32_t offset = shard.spans[2 * static_cast<size_t>(entry)];
  const uint32_t count = shard.spans[2 * static_cast<size_t>(entry) + 1];
  out.insert(out.end(), shard.ids.begin() + offset, shard.ids.begin() + offset + count);
  return true;
}

void WordCache::insert(std::string_view word, const std::vector<TokenId>& ids) const {
  if (word.empty() || word.size() > kMaxWord) return;
  Shard& shard = shards_[hash_bytes(word.data(), word.size()) % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.keys.capacity() < kShardBytes) shard.keys.reserve(kShardBytes);
  if (shard.keys.size() + word.size() > shard.keys.capacity()) {
    shard.index = StringMap();
    shard.keys.clear();
    shard.spans.clear();
    shard.ids.clear();
  }
  if (shard.index.find(word) >= 0) return;  // another thread added it meanwhile
  const char* key = shard.keys.data() + shard.keys.size();
  shard.keys.append(word);  // within capacity: earlier keys do not move
  const int32_t entry = static_cast<int32_t>(shard.spans.size() / 2);
  shard.spans.push_back(static_cast<uint32_t>(shard.ids.size()));
  shard.spans.push_back(static_cast<uint32_t>(ids.size()));
  shard.ids.insert(shard.ids.end(), ids.begin(), ids.end());
  shard.index.insert(std::string_view(key, word.size()), entry);
}

}  // namespace owl::tokenizer
