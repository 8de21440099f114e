// Incremental matching of a compiled grammar over bytes, and the token masks it allows.
//
// The matcher holds a set of stacks (a pushdown automaton that forks on alternatives): each stack
// is a grammar position waiting for a code point plus a chain of return positions, and the text
// so far matches the grammar as long as the set is not empty. Bytes arrive as the tokens' UTF-8;
// a character split across tokens is held as a partial code point, and a partial character is
// allowed only while some stack can still take a character it may complete to.
//
// Token masks walk a byte trie of the vocabulary (TokenIndex, one per tokenizer) from the current
// set, dropping a whole subtree as soon as no stack survives its prefix. Where the set takes a run
// of one character class (a string's content, a bounded string, a number's digits), the tokens made
// of that class are decided at once from the class's ClassRuns, and the walk steps only through
// the subtrees holding other tokens (those that close the string, say). The mask of a state is
// cached in the Program (shared by every sequence of every request using the same grammar and
// vocabulary), so the walk runs once per distinct state: inside a long string, the state after
// every token is the same one.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "constrain/grammar.h"
#include "constrain/token_index.h"
#include "sample/constraint.h"
#include "tokenizer/tokenizer.h"

namespace owl::constrain {

struct Stack {
  int32_t pos;    // element waiting for a code point; -1: the grammar is complete on this stack
  int32_t frame;  // return chain (Frames); -1: the bottom
  bool operator==(const Stack&) const = default;
  bool operator<(const Stack& o) const { return pos != o.pos ? pos < o.pos : frame < o.frame; }
};

// Return chains, shared between stacks: frame f returns to position ret(f), then to parent(f).
class Frames {
 public:
  int32_t intern(int32_t ret, int32_t parent);
  int32_t ret(int32_t f) const { return nodes_[static_cast<size_t>(f)].first; }
  int32_t parent(int32_t f) const { return nodes_[static_cast<size_t>(f)].second; }

 private:
  std::vector<std::pair<int32_t, int32_t>> nodes_;
  std::unordered_map<uint64_t, int32_t> index_;
};

// Matching state over text: a stack set and a partial code point.
class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> grammar);

  // Feeds bytes; false (and the matcher is dead) when the text leaves the grammar.
  bool feed(std::string_view bytes);
  // The text so far is a complete match of the grammar.
  bool accepted() const;
  // The text so far can still be continued or completed.
  bool alive() const { return !stacks_.empty(); }
  // No continuation is possible: the match is complete and nothing may follow.
  bool finished() const;

  const std::vector<Stack>& stacks() const { return stacks_; }
  const Utf8State& utf8() const { return utf8_; }
  // A value identifying the state (set of stacks with their whole chains, partial character).
  std::string key() const;
  void key(std::string& out) const;  // the same into `out`, reusing its storage

  enum class Walk {
    kSkipRuns,   // tokens of a class the set takes in a run come from ClassRuns
    kEveryNode,  // every viable node of the trie is stepped through (the definition of the above)
  };
  // Allowed tokens from the current state as a bitset over the vocabulary (EOG tokens allowed
  // when the match is complete), computed by walking the trie.
  void compute_mask(const TokenIndex& index, std::vector<uint64_t>& mask, Walk walk = Walk::kSkipRuns);

 private:
  // A run: characters of class M, which each stack of the set takes all of or none of, so that
  // every character of M leads to the same next set; `limit` of them in a row are allowed (any
  // number when kUnbounded), and when `exact`, more are refused.
  struct Run {
    std::shared_ptr<const ClassRuns> runs;  // of M
    int limit = 0;
    bool exact = false;
  };
  static constexpr int kUnbounded = 1 << 30;

  // The mask walk's state at one depth of the trie: the stacks after the node's bytes, and the
  // sets one more character leads to from them, by which of the stacks take it.
  struct Level {
    static constexpr size_t kNext = 16;
    const std::vector<Stack>* set = nullptr;
    Utf8State utf8;
    Level* memo = nullptr;  // where the sets `set` leads to are kept: this level or one above with the same set
    size_t n_next = 0;
    uint64_t taken[kNext] = {};
    const std::vector<Stack>* next[kNext] = {};  // null: no stack survives; else `set` itself or a store
    std::vector<Stack> store[kNext];
    std::vector<Stack> spill;  // the set here when the memo above is full
  };

  // Working memory of expansions and mask walks, kept between calls to spare allocations. Not
  // part of the state: a copy of a matcher starts without it.
  struct Workspace {
    std::vector<Stack> scratch;
    std::vector<std::pair<int32_t, int32_t>> work;
    std::unordered_set<uint64_t> seen;
    std::vector<Level> levels;
    std::vector<Stack> chain[2];
    std::vector<int8_t> relation;  // per class, during plan_run: 0 unknown, 1 uniform, -1 not
    Workspace() = default;
    Workspace(const Workspace&) {}
    Workspace& operator=(const Workspace&) { return *this; }
  };

  // Finds the run from the current set; false when there is none worth taking.
  bool plan_run(const TokenIndex& index, Run& run);
  // Each stack of `set` takes all of `m` or none of it.
  bool uniform(const std::vector<Stack>& set, const CharClass& m);
  // The set after code point `cp` from `from.set`, remembered in `from.memo` (or made in
  // `spill`); null when no stack takes it.
  const std::vector<Stack>* follow(const Level& from, uint32_t cp, std::vector<Stack>& spill);

  // Appends the stacks that wait for a code point, starting at `pos` with return chain `frame`.
  void expand(int32_t pos, int32_t frame, std::vector<Stack>& out);
  void begin_expansion();
  // Stacks after code point `cp` from `in` (sorted, deduplicated) into `out`.
  void advance(const std::vector<Stack>& in, uint32_t cp, std::vector<Stack>& out);
  // Some stack of `in` takes a code point in [lo, hi].
  bool viable(const std::vector<Stack>& in, uint32_t lo, uint32_t hi) const;
  // One byte: the new partial character, and whether `in` must advance (complete code point).
  // Returns false when the byte cannot continue valid UTF-8 or no stack can take it.
  bool step(const std::vector<Stack>& in, const Utf8State& u, uint8_t byte, Utf8State& u_out,
            std::vector<Stack>& out, bool& same);

  std::shared_ptr<const Grammar> grammar_;
  Frames frames_;
  std::vector<Stack> stacks_;
  Utf8State utf8_;
  size_t expanded_ = 0;
  bool overflow_ = false;
  Workspace ws_;
};

// A grammar bound to a vocabulary: makes one Constraint per sequence and caches masks by state.
class Program : public std::enable_shared_from_this<Program> {
 public:
  Program(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenIndex> index)
      : grammar_(std::move(grammar)), index_(std::move(index)) {}

  std::unique_ptr<sample::Constraint> make() const;
  sample::ConstraintFactory factory() const;

  const Grammar& grammar() const { return *grammar_; }
  const TokenIndex& index() const { return *index_; }
  std::shared_ptr<const std::vector<uint64_t>> cached(const std::string& key) const;
  void store(const std::string& key, std::shared_ptr<const std::vector<uint64_t>> mask) const;
  size_t cache_size() const;

 private:
  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenIndex> index_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::shared_ptr<const std::vector<uint64_t>>> cache_;
};

// The sampler's constraint for one sequence.
class GrammarConstraint final : public sample::Constraint {
 public:
  explicit GrammarConstraint(std::shared_ptr<const Program> program);
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;
  const Matcher& matcher() const { return matcher_; }
  // The allowed-token bitset for the current state (cached).
  std::shared_ptr<const std::vector<uint64_t>> allowed();

 private:
  std::shared_ptr<const Program> program_;
  Matcher matcher_;
  bool ended_ = false;
  std::string key_;  // the state key, rebuilt each token
};

}  // namespace owl::constrain

namespace owl::constrain {

// Parses GBNF text and binds it to a vocabulary.
core::Result<std::shared_ptr<const Program>> compile(std::string_view gbnf, std::shared_ptr<const TokenIndex> index);

}  // namespace owl::constrain
