// Cutting special tokens out of text before the model's tokenizer runs on the rest.
//
// llama.cpp (tokenizer_st_partition) loops over the special tokens, longest first, and splits
// every raw piece at each leftmost non-overlapping occurrence of the current token. Owl finds all
// occurrences in one pass over a trie, then replays that order: an occurrence is taken when none
// of its bytes is already taken, in (token rank, position) order. This gives the same pieces: a
// raw piece of llama.cpp is exactly a run of untaken bytes.
#include <algorithm>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace owl::tokenizer {

void SpecialMatcher::build(const std::vector<TokenData>& tokens, std::string_view text_arena) {
  const uint32_t special_attrs = kAttrControl | kAttrUserDefined | kAttrUnknown;
  std::vector<TokenId> ids;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].attr & special_attrs) ids.push_back(static_cast<TokenId>(i));
  }
  // Longest first as llama.cpp sorts them; its std::sort leaves ties unspecified, owl takes ids.
  std::stable_sort(ids.begin(), ids.end(), [&](TokenId a, TokenId b) {
    return tokens[static_cast<size_t>(a)].text_size > tokens[static_cast<size_t>(b)].text_size;
  });
  lengths_.assign(ids.size(), 0);
  attrs_.assign(ids.size(), 0);
  nodes_.assign(1, Node{});
  root_child_.fill(-1);
  for (size_t rank = 0; rank < ids.size(); ++rank) {
    const TokenData& t = tokens[static_cast<size_t>(ids[rank])];
    lengths_[rank] = t.text_size;
    attrs_[rank] = t.attr;
    const std::string_view text = text_arena.substr(t.text_offset, t.text_size);
    int32_t node = 0;
    for (size_t k = 0; k < text.size(); ++k) {
      const uint8_t byte = static_cast<uint8_t>(text[k]);
      int32_t child = node == 0 ? root_child_[byte] : nodes_[static_cast<size_t>(node)].first_child;
      if (node != 0) {
        while (child >= 0 && nodes_[static_cast<size_t>(child)].byte != byte) {
          child = nodes_[static_cast<size_t>(child)].next_sibling;
        }
      }
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        Node fresh;
        fresh.byte = byte;
        if (node == 0) {
          root_child_[byte] = child;
        } else {
          fresh.next_sibling = nodes_[static_cast<size_t>(node)].first_child;
          nodes_[static_cast<size_t>(node)].first_child = child;
        }
        nodes_.push_back(fresh);
      }
      node = child;
    }
    nodes_[static_cast<size_t>(node)].token = static_cast<int32_t>(rank);  // the node holds the rank
  }
  token_of_rank_ = std::move(ids);
}

void SpecialMatcher::partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  out.clear();
  const uint32_t n = static_cast<uint32_t>(text.size());
  if (n == 0) return;
  struct Hit {
    int32_t rank;
    uint32_t pos;
  };
  std::vector<Hit> hits;
  if (!token_of_rank_.empty()) {
    const uint32_t parse_only = kAttrControl | kAttrUnknown;
    for (uint32_t i = 0; i < n; ++i) {
      int32_t node = root_child_[static_cast<uint8_t>(text[i])];
      uint32_t depth = 1;
      while (node >= 0) {
        const Node& nd = nodes_[static_cast<size_t>(node)];
        if (nd.token >= 0 && (parse_special || !(attrs_[static_cast<size_t>(nd.token)] & parse_only))) {
          hits.push_back({nd.token, i});
        }
        if (i + depth >= n) break;
        const uint8_t next = static_cast<uint8_t>(text[i + depth]);
        int32_t child = nd.first_child;
        while (child >= 0 && nodes_[static_cast<size_t>(child)].byte != next) {
          child = nodes_[static_cast<size_t>(child)].next_sibling;
        }
        node = child;
        ++depth;
      }
    }
  }
  if (hits.empty()) {
    out.push_back({kNoToken, 0, n});
    return;
  }
  std::sort(hits.begin(), hits.end(),
            [](const Hit& a, const Hit& b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; });
  std::vector<uint8_t> taken(n, 0);
  std::vector<Hit> accepted;
  for (const Hit& h : hits) {
    const uint32_t len = lengths_[static_cast<size_t>(h.rank)];
    if (std::any_of(taken.begin() + h.pos, taken.begin() + h.pos + len, [](uint8_t t) { return t != 0; })) {
      continue;
    }
    std::fill(taken.begin() + h.pos, taken.begin() + h.pos + len, 1);
    accepted.push_back(h);
    const uint32_t attr = attrs_[static_cast<size_t>(h.rank)];
    if (attr & kAttrLstrip) {
      for (uint32_t k = h.pos; k > 0 && !taken[k - 1] && is_ascii_space(text[k - 1]); --k) taken[k - 1] = 1;
    }
    if (attr & kAttrRstrip) {
      for (uint32_t k = h.pos + len; k < n && !taken[k] && is_ascii_space(text[k]); ++k) taken[k] = 1;
    }
  }
  std::sort(accepted.begin(), accepted.end(), [](const Hit& a, const Hit& b) { return a.pos < b.pos; });
  // Raw runs of untaken bytes in [from, to).
  const auto emit_raw = [&](uint32_t from, uint32_t to) {
    uint32_t k = from;
    while (k < to) {
      while (k < to && taken[k]) ++k;
      const uint32_t begin = k;
      while (k < to && !taken[k]) ++k;
      if (k > begin) out.push_back({kNoToken, begin, k});
    }
  };
  uint32_t cursor = 0;
  for (const Hit& h : accepted) {
    emit_raw(cursor, h.pos);
    const uint32_t len = lengths_[static_cast<size_t>(h.rank)];
    out.push_back({token_of_rank_[static_cast<size_t>(h.rank)], h.pos, h.pos + len});
    cursor = h.pos + len;
  }
  emit_raw(cursor, n);
}

}  // namespace owl::tokenizer
