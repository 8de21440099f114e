// SentencePiece-style BPE by scores, as llama.cpp's llm_tokenizer_spm_session:
// 1. the piece is cut into characters by the lead byte's length (no validation: a malformed
//    sequence is one "character" of the length its first byte announces, clamped to the end);
// 2. every adjacent pair whose concatenation is a token enters a queue ordered by the token's
//    score, highest first, ties to the leftmost pair;
// 3. the best pair is merged while both halves are unchanged, and the new symbol's pairs with
//    its neighbours enter the queue;
// 4. each final symbol is its token, or, when not a token, one byte token per byte (<0xNN>).
#include <algorithm>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace owl::tokenizer {

namespace {

using Symbol = SpmScratch::Symbol;
using Bigram = SpmScratch::Bigram;

// Heap order: the "largest" bigram is popped first.
bool lower_priority(const Bigram& a, const Bigram& b) {
  return a.score < b.score || (a.score == b.score && a.left > b.left);
}

void try_add_bigram(const Tokenizer::Impl& impl, std::string_view text, SpmScratch& s, int32_t left,
                    int32_t right) {
  if (left < 0 || right < 0) return;
  const Symbol& l = s.symbols[static_cast<size_t>(left)];
  const Symbol& r = s.symbols[static_cast<size_t>(right)];
  const uint32_t size = l.size + r.size;
  if (size > impl.max_token_len) return;
  const TokenId id = impl.token_map.find(text.substr(l.begin, size));
  if (id < 0) return;
  s.queue.push_back({impl.tokens[static_cast<size_t>(id)].score, left, right, size});
  std::push_heap(s.queue.begin(), s.queue.end(), lower_priority);
}

void append_symbol(const Tokenizer::Impl& impl, std::string_view text, const Symbol& sym,
                   std::vector<TokenId>& out) {
  const std::string_view piece = text.substr(sym.begin, sym.size);
  const TokenId id = impl.token_map.find(piece);
  if (id >= 0) {
    out.push_back(id);
    return;
  }
  for (char c : piece) {
    const TokenId byte = impl.byte_tokens[static_cast<uint8_t>(c)];
    // llama.cpp throws when a byte has no token; owl falls back to <unk> (or drops the byte).
    const TokenId fallback = byte != kNoToken ? byte : impl.special.unk;
    if (fallback != kNoToken) out.push_back(fallback);
  }
}

// Steps 1-4 on one word (or the whole piece).
void merge_spm(const Tokenizer::Impl& impl, std::string_view text, std::vector<TokenId>& out, SpmScratch& s) {
  if (text.empty()) return;
  s.symbols.clear();
  s.queue.clear();
  for (size_t offset = 0; offset < text.size();) {
    const size_t size = std::min(utf8_seq_len(static_cast<uint8_t>(text[offset])), text.size() - offset);
    const int32_t index = static_cast<int32_t>(s.symbols.size());
    offset += size;
    s.symbols.push_back({static_cast<uint32_t>(offset - size), static_cast<uint32_t>(size), index - 1,
                         offset == text.size() ? -1 : index + 1});
  }
  for (int32_t i = 1; i < static_cast<int32_t>(s.symbols.size()); ++i) try_add_bigram(impl, text, s, i - 1, i);

  while (!s.queue.empty()) {
    std::pop_heap(s.queue.begin(), s.queue.end(), lower_priority);
    const Bigram bigram = s.queue.back();
    s.queue.pop_back();
    Symbol& left = s.symbols[static_cast<size_t>(bigram.left)];
    Symbol& right = s.symbols[static_cast<size_t>(bigram.right)];
    // A pair is stale once either half was merged with something else.
    if (left.size == 0 || right.size == 0 || left.size + right.size != bigram.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) s.symbols[static_cast<size_t>(right.next)].prev = bigram.left;
    try_add_bigram(impl, text, s, left.prev, bigram.left);
    try_add_bigram(impl, text, s, bigram.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = s.symbols[static_cast<size_t>(i)].next) {
    append_symbol(impl, text, s.symbols[static_cast<size_t>(i)], out);
  }
}

bool is_marker(std::string_view text, size_t pos, size_t len) {
  return len == kSpaceMarker.size() && text.compare(pos, len, kSpaceMarker) == 0;
}

}  // namespace

bool spm_merges_stay_in_words(const Tokenizer::Impl& impl) {
  for (size_t id = 0; id < impl.tokens.size(); ++id) {
    const std::string_view text = impl.text(static_cast<TokenId>(id));
    bool prev_marker = true;
    for (size_t pos = 0; pos < text.size();) {
      const size_t len = std::min(utf8_seq_len(static_cast<uint8_t>(text[pos])), text.size() - pos);
      const bool marker = is_marker(text, pos, len);
      if (marker && !prev_marker) return false;
      prev_marker = marker;
      pos += len;
    }
  }
  return true;
}

void tokenize_spm(const Tokenizer::Impl& impl, std::string_view text, std::vector<TokenId>& out,
                  SpmScratch& s) {
  if (!impl.spm_words) {
    merge_spm(impl, text, out, s);
    return;
  }
  // Words start at a U+2581 that follows another character (see Impl::spm_words).
  const auto word = [&](size_t begin, size_t end) {
    const std::string_view w = text.substr(begin, end - begin);
    if (w.size() > WordCache::kMaxWord) {
      merge_spm(impl, w, out, s);
    } else if (!impl.spm_cache.find(w, out)) {
      s.ids.clear();
      merge_spm(impl, w, s.ids, s);
      out.insert(out.end(), s.ids.begin(), s.ids.end());
      impl.spm_cache.insert(w, s.ids);
    }
  };
  size_t start = 0;
  bool prev_marker = true;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = std::min(utf8_seq_len(static_cast<uint8_t>(text[pos])), text.size() - pos);
    const bool marker = is_marker(text, pos, len);
    if (marker && !prev_marker) {
      word(start, pos);
      start = pos;
    }
    prev_marker = marker;
    pos += len;
  }
  if (start < text.size()) word(start, text.size());
}

}  // namespace owl::tokenizer
