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

}  // namespace owl::constrain
