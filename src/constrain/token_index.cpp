#include "constrain/token_index.h"

#include <algorithm>
#include <numeric>

namespace owl::constrain {

TokenIndex::TokenIndex(const tokenizer::Tokenizer& tokenizer) : n_vocab_(tokenizer.n_vocab()) {
  piece_offsets_.reserve(static_cast<size_t>(n_vocab_) + 1);
  piece_offsets_.push_back(0);
  eog_flag_.assign(static_cast<size_t>(n_vocab_), 0);
  std::vector<int32_t> text_tokens;
  for (int32_t id = 0; id < n_vocab_; ++id) {
    const std::string_view p = tokenizer.token_to_piece(id, false);
    pieces_.append(p);
    piece_offsets_.push_back(static_cast<uint32_t>(pieces_.size()));
    if (tokenizer.is_eog(id)) {
      eog_.push_back(id);
      eog_flag_[static_cast<size_t>(id)] = 1;
    } else if (!p.empty()) {
      text_tokens.push_back(id);
    }
  }
  std::sort(text_tokens.begin(), text_tokens.end(), [&](int32_t a, int32_t b) {
    const std::string_view pa = piece(a), pb = piece(b);
    return pa != pb ? pa < pb : a < b;
  });
  byte_.push_back(0);
  depth_.push_back(0);
  end_.push_back(0);
  std::vector<uint32_t> path{0};
  std::vector<std::pair<uint32_t, int32_t>> attached;  // (node, token), in node order
  std::string_view prev;
  for (int32_t id : text_tokens) {
    const std::string_view p = piece(id);
    size_t lcp = 0;
    while (lcp < p.size() && lcp < prev.size() && p[lcp] == prev[lcp]) ++lcp;
    while (path.size() - 1 > lcp) {
      end_[path.back()] = static_cast<uint32_t>(byte_.size());
      path.pop_back();
    }
    for (size_t j = lcp; j < p.size(); ++j) {
      path.push_back(static_cast<uint32_t>(byte_.size()));
      byte_.push_back(static_cast<uint8_t>(p[j]));
      depth_.push_back(static_cast<uint16_t>(std::min<size_t>(j + 1, 65535)));
      end_.push_back(0);
    }
    max_depth_ = std::max(max_depth_, p.size());
    attached.push_back({path.back(), id});
    prev = p;
  }
  while (!path.empty()) {
    end_[path.back()] = static_cast<uint32_t>(byte_.size());
    path.pop_back();
  }
  token_begin_.assign(byte_.size() + 1, 0);
  for (const auto& [node, id] : attached) ++token_begin_[node + 1];
  std::partial_sum(token_begin_.begin(), token_begin_.end(), token_begin_.begin());
  tokens_.reserve(attached.size());
  for (const auto& [node, id] : attached) tokens_.push_back(id);
}

std::string_view TokenIndex::piece(int32_t token) const {
  if (token < 0 || token >= n_vocab_) return {};
  const uint32_t b = piece_offsets_[static_cast<size_t>(token)];
  return std::string_view(pieces_).substr(b, piece_offsets_[static_cast<size_t>(token) + 1] - b);
}

bool TokenIndex::is_eog(int32_t token) const {
  return token >= 0 && token < n_vocab_ && eog_flag_[static_cast<size_t>(token)];
}

namespace {
// Distinct classes whose runs are kept per vocabulary (each about 2 bytes per trie node and 4 per
// token); a grammar uses a handful, and JSON grammars mostly the same few.
constexpr size_t kMaxCachedRuns = 64;
}  // namespace

std::shared_ptr<const ClassRuns> TokenIndex::runs(const CharClass& cls) const {
  const std::string key = cls.key();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = runs_.find(key);
    if (it != runs_.end()) return it->second;
  }
  // Made outside the lock: two threads may both make it, and one copy is kept.
  auto made = std::make_shared<const ClassRuns>(make_runs(cls));
  std::lock_guard<std::mutex> lock(mutex_);
  if (runs_.size() >= kMaxCachedRuns) runs_.clear();
  return runs_.try_emplace(key, std::move(made)).first->second;
}

ClassRuns TokenIndex::make_runs(const CharClass& cls) const {
  const size_t n = n_nodes();
  ClassRuns r;
  r.subtree_chars.assign(n, -1);
  r.subtree_chars[0] = 0;
  r.tokens.assign((static_cast<size_t>(n_vocab_) + 63) / 64, 0);
  std::vector<std::pair<int16_t, int32_t>> found;  // (characters, token), at least 2 characters
  // Along the current path, per depth: the node, the partial character, and the complete
  // characters so far (-1 once one of them is outside the class).
  std::vector<uint32_t> path(max_depth_ + 1, 0);
  std::vector<Utf8State> utf8(max_depth_ + 1);
  std::vector<int16_t> chars(max_depth_ + 1, 0);
  size_t top = 0;  // depth of the deepest node on the path whose subtree is not folded yet
  auto fold = [&](uint32_t parent, uint32_t child) {
    int16_t& p = r.subtree_chars[parent];
    const int16_t c = r.subtree_chars[child];
    p = p < 0 || c < 0 ? int16_t{-1} : std::max(p, c);
  };
  for (size_t i = 1; i < n;) {
    const size_t d = depth_[i];
    for (; top >= d; --top) fold(path[top - 1], path[top]);  // their subtrees are complete
    uint32_t cp = 0, lo = 0, hi = 0;
    int16_t own = -1;
    const Utf8Step kind = chars[d - 1] < 0 ? Utf8Step::kInvalid : utf8_step(utf8[d - 1], byte_[i], utf8[d], cp, lo, hi);
    if (kind == Utf8Step::kPartial) {
      // The characters below may still be in the class when this prefix's range is not all in
      // it, so the count goes on; the node itself counts only when its range is.
      chars[d] = chars[d - 1];
      if (cls.covers(lo, hi)) own = static_cast<int16_t>(chars[d - 1] + 1);
    } else if (kind == Utf8Step::kComplete && cls.contains(cp)) {
      own = chars[d] = static_cast<int16_t>(chars[d - 1] + 1);
    } else {
      // Nothing below can be made of the class either: the subtree stays -1.
      fold(path[d - 1], static_cast<uint32_t>(i));
      i = end_[i];
      continue;
    }
    path[d] = static_cast<uint32_t>(i);
    top = d;
    r.subtree_chars[i] = own;
    if (own >= 0) {
      r.max_chars = std::max(r.max_chars, own);
      for (uint32_t k = token_begin_[i]; k < token_begin_[i + 1]; ++k) {
        const int32_t t = tokens_[k];
        r.tokens[static_cast<size_t>(t) >> 6] |= 1ull << (t & 63);
        if (own >= 2) found.push_back({own, t});
      }
    }
    ++i;
  }
  for (; top > 0; --top) fold(path[top - 1], path[top]);
  // Longest first, by counting.
  std::vector<uint32_t> count(static_cast<size_t>(r.max_chars) + 2, 0);
  for (const auto& [c, t] : found) ++count[static_cast<size_t>(c)];
  r.longer_than.assign(static_cast<size_t>(r.max_chars) + 1, 0);
  for (size_t c = r.longer_than.size() - 1; c-- > 0;) r.longer_than[c] = r.longer_than[c + 1] + count[c + 1];
  std::vector<uint32_t> next = r.longer_than;
  r.long_tokens.resize(found.size());
  for (const auto& [c, t] : found) r.long_tokens[next[static_cast<size_t>(c)]++] = t;
  return r;
}

}  // namespace owl::constrain
