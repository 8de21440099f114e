#include "constrain/matcher.h"

#include <algorithm>
#include <limits>

namespace owl::constrain {

// ---- Frames ----

int32_t Frames::intern(int32_t ret, int32_t parent) {
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ret)) << 32) | static_cast<uint32_t>(parent);
  auto [it, fresh] = index_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
  if (fresh) nodes_.push_back({ret, parent});
  return it->second;
}

// ---- Matcher ----

Matcher::Matcher(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  begin_expansion();
  for (int32_t alt : grammar_->alternatives(grammar_->root())) expand(alt, -1, stacks_);
  if (overflow_) stacks_.clear();
  std::sort(stacks_.begin(), stacks_.end());
  stacks_.erase(std::unique(stacks_.begin(), stacks_.end()), stacks_.end());
}

namespace {
// Work items one expansion may take: a grammar whose alternatives multiply (nested optional
// repetitions) is cut off instead of running away; the text is then rejected.
constexpr size_t kMaxExpansion = 200000;
// Past this many items in one expansion, positions already expanded are skipped (the result
// from a position is the same however it was reached), so ambiguity costs linear time.
constexpr size_t kTrackAfter = 64;
}  // namespace

void Matcher::expand(int32_t pos, int32_t frame, std::vector<Stack>& out) {
  const std::vector<Element>& code = grammar_->code();
  ws_.work.clear();
  ws_.work.push_back({pos, frame});
  while (!ws_.work.empty()) {
    auto [p, f] = ws_.work.back();
    ws_.work.pop_back();
    if (++expanded_ > kTrackAfter) {
      if (expanded_ > kMaxExpansion) {
        overflow_ = true;
        return;
      }
      const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(p)) << 32) | static_cast<uint32_t>(f);
      if (!ws_.seen.insert(key).second) continue;
    }
    for (bool more = true; more;) {
      const Element& e = code[static_cast<size_t>(p)];
      switch (e.kind) {
        case Element::kEnd:
          if (f < 0) {
            out.push_back({-1, -1});
            more = false;
          } else {
            p = frames_.ret(f);
            f = frames_.parent(f);
          }
          break;
        case Element::kClass:
          out.push_back({p, f});
          more = false;
          break;
        case Element::kClassStar:
          out.push_back({p, f});
          ++p;
          break;
        case Element::kRef: {
          const int32_t ret = p + 1;
          // A call in tail position returns straight to the caller's caller: repetition written
          // as right recursion does not grow the stack.
          const int32_t nf = code[static_cast<size_t>(ret)].kind == Element::kEnd ? f : frames_.intern(ret, f);
          const std::vector<int32_t>& alts = grammar_->alternatives(e.arg);
          for (size_t i = alts.size(); i-- > 0;) ws_.work.push_back({alts[i], nf});
          more = false;
          break;
        }
      }
    }
  }
}

void Matcher::begin_expansion() {
  expanded_ = 0;
  overflow_ = false;
  if (!ws_.seen.empty()) ws_.seen.clear();
}

void Matcher::advance(const std::vector<Stack>& in, uint32_t cp, std::vector<Stack>& out) {
  out.clear();
  begin_expansion();
  const std::vector<Element>& code = grammar_->code();
  const std::vector<CharClass>& classes = grammar_->classes();
  for (const Stack& s : in) {
    if (s.pos < 0) continue;
    const Element& e = code[static_cast<size_t>(s.pos)];
    if (!classes[static_cast<size_t>(e.arg)].contains(cp)) continue;
    expand(e.kind == Element::kClass ? s.pos + 1 : s.pos, s.frame, out);
    if (overflow_) {
      out.clear();
      return;
    }
  }
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

bool Matcher::viable(const std::vector<Stack>& in, uint32_t lo, uint32_t hi) const {
  const std::vector<Element>& code = grammar_->code();
  const std::vector<CharClass>& classes = grammar_->classes();
  for (const Stack& s : in) {
    if (s.pos >= 0 && classes[static_cast<size_t>(code[static_cast<size_t>(s.pos)].arg)].intersects(lo, hi)) return true;
  }
  return false;
}

bool Matcher::step(const std::vector<Stack>& in, const Utf8State& u, uint8_t byte, Utf8State& u_out,
                   std::vector<Stack>& out, bool& same) {
  uint32_t cp = 0, lo = 0, hi = 0;
  switch (utf8_step(u, byte, u_out, cp, lo, hi)) {
    case Utf8Step::kInvalid:
      return false;
    case Utf8Step::kPartial:
      // A partial character: some stack must take a code point it can still become.
      same = true;
      return viable(in, lo, hi);
    case Utf8Step::kComplete:
      break;
  }
  same = false;
  advance(in, cp, out);
  return !out.empty();
}

bool Matcher::feed(std::string_view bytes) {
  for (char c : bytes) {
    if (stacks_.empty()) return false;
    Utf8State u;
    bool same = false;
    if (!step(stacks_, utf8_, static_cast<uint8_t>(c), u, ws_.scratch, same)) {
      stacks_.clear();
      utf8_ = {};
      return false;
    }
    utf8_ = u;
    if (!same) stacks_.swap(ws_.scratch);
  }
  return !stacks_.empty();
}

bool Matcher::accepted() const {
  if (utf8_.need != 0) return false;
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.pos < 0; });
}

bool Matcher::finished() const {
  return accepted() && std::all_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.pos < 0; });
}

std::string Matcher::key() const {
  std::string out;
  key(out);
  return out;
}

void Matcher::key(std::string& out) const {
  out.clear();
  auto put = [&out](int32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(static_cast<int32_t>(utf8_.cp));
  put(utf8_.need);
  put(utf8_.len);
  for (const Stack& s : stacks_) {
    put(s.pos);
    for (int32_t f = s.frame; f >= 0; f = frames_.parent(f)) put(frames_.ret(f));
    put(-2);
  }
}

void Matcher::compute_mask(const TokenIndex& index, std::vector<uint64_t>& mask, Walk walk) {
  mask.assign((static_cast<size_t>(index.n_vocab()) + 63) / 64, 0);
  if (accepted()) {
    for (int32_t t : index.eog()) mask[static_cast<size_t>(t) >> 6] |= 1ull << (t & 63);
  }
  if (stacks_.empty()) return;
  Run run;
  const bool skip = walk == Walk::kSkipRuns && plan_run(index, run);
  if (skip) {
    const ClassRuns& r = *run.runs;
    for (size_t w = 0; w < mask.size(); ++w) mask[w] |= r.tokens[w];
    if (run.limit < static_cast<int>(r.longer_than.size())) {
      for (uint32_t k = 0; k < r.longer_than[static_cast<size_t>(run.limit)]; ++k) {
        const int32_t t = r.long_tokens[k];
        mask[static_cast<size_t>(t) >> 6] &= ~(1ull << (t & 63));
      }
    }
  }
  const size_t depth = index.max_depth_ + 1;
  if (ws_.levels.size() < depth) ws_.levels.resize(depth);
  ws_.levels[0].set = &stacks_;
  ws_.levels[0].utf8 = utf8_;
  ws_.levels[0].memo = &ws_.levels[0];
  ws_.levels[0].n_next = 0;
  const size_t n = index.n_nodes();
  for (size_t i = 1; i < n;) {
    if (skip) {
      // A subtree made only of the run's class is decided: its tokens up to the limit are in the
      // mask already, and longer ones are refused when the limit is exact.
      const int16_t s = run.runs->subtree_chars[i];
      if (s >= 0 && (run.exact || s <= run.limit)) {
        i = index.end_[i];
        continue;
      }
    }
    const size_t d = index.depth_[i];
    const Level& up = ws_.levels[d - 1];
    Level& here = ws_.levels[d];
    uint32_t cp = 0, lo = 0, hi = 0;
    const Utf8Step kind = utf8_step(up.utf8, index.byte_[i], here.utf8, cp, lo, hi);
    here.set = kind == Utf8Step::kComplete ? follow(up, cp, here.spill)
               : kind == Utf8Step::kPartial && viable(*up.set, lo, hi) ? up.set
                                                                     : nullptr;
    if (!here.set) {
      i = index.end_[i];
      continue;
    }
    // The same set as above (inside a string, say) leads where it led there.
    if (here.set == up.set) {
      here.memo = up.memo;
    } else {
      here.memo = &here;
      here.n_next = 0;
    }
    for (uint32_t k = index.token_begin_[i]; k < index.token_begin_[i + 1]; ++k) {
      const int32_t t = index.tokens_[k];
      mask[static_cast<size_t>(t) >> 6] |= 1ull << (t & 63);
    }
    ++i;
  }
}

const std::vector<Stack>* Matcher::follow(const Level& from, uint32_t cp, std::vector<Stack>& spill) {
  const std::vector<Stack>& in = *from.set;
  const std::vector<Element>& code = grammar_->code();
  const std::vector<CharClass>& classes = grammar_->classes();
  if (in.size() > 64) {  // more than `taken` can tell apart
    advance(in, cp, spill);
    return spill.empty() ? nullptr : &spill;
  }
  // The next set depends only on which stacks take the character: nodes with the same set
  // (siblings; a node and its children inside a string) share what it leads to.
  uint64_t taken = 0;
  for (size_t k = 0; k < in.size(); ++k) {
    const Stack& s = in[k];
    if (s.pos >= 0 && classes[static_cast<size_t>(code[static_cast<size_t>(s.pos)].arg)].contains(cp)) taken |= 1ull << k;
  }
  if (taken == 0) return nullptr;
  Level& memo = *from.memo;
  for (size_t j = 0; j < memo.n_next; ++j) {
    if (memo.taken[j] == taken) return memo.next[j];
  }
  std::vector<Stack>& out = memo.n_next < Level::kNext ? memo.store[memo.n_next] : spill;
  advance(in, cp, out);
  const std::vector<Stack>* next = out.empty() ? nullptr : out == in ? &in : &out;
  if (&out != &spill) {
    memo.taken[memo.n_next] = taken;
    memo.next[memo.n_next++] = next;
  }
  return next;
}

namespace {
// Classes narrower than this are left to the walk: their tokens are few, and a ClassRuns costs a
// pass over the trie.
constexpr size_t kMinRunWeight = 8;
}  // namespace

bool Matcher::uniform(const std::vector<Stack>& set, const CharClass& m) {
  const std::vector<Element>& code = grammar_->code();
  const std::vector<CharClass>& classes = grammar_->classes();
  for (const Stack& s : set) {
    if (s.pos < 0) continue;
    const auto c = static_cast<size_t>(code[static_cast<size_t>(s.pos)].arg);
    if (ws_.relation[c] == 0) {
      ws_.relation[c] = subtract(m, classes[c]).empty() || intersect(m, classes[c]).empty() ? 1 : -1;
    }
    if (ws_.relation[c] < 0) return false;
  }
  return true;
}

bool Matcher::plan_run(const TokenIndex& index, Run& run) {
  if (utf8_.need != 0) return false;  // the walk starts inside a character
  const std::vector<Element>& code = grammar_->code();
  const std::vector<CharClass>& classes = grammar_->classes();
  auto class_of = [&](const Stack& s) -> const CharClass& {
    return classes[static_cast<size_t>(code[static_cast<size_t>(s.pos)].arg)];
  };
  const Stack* widest = nullptr;
  for (const Stack& s : stacks_) {
    if (s.pos >= 0 && (!widest || class_of(s).weight() > class_of(*widest).weight())) widest = &s;
  }
  if (!widest || class_of(*widest).weight() < kMinRunWeight) return false;
  // Narrow the widest class until every stack takes all of it or none, keeping the larger part.
  CharClass m = class_of(*widest);
  for (const Stack& s : stacks_) {
    if (s.pos < 0) continue;
    CharClass outside = subtract(m, class_of(s));
    if (outside.empty()) continue;
    CharClass inside = intersect(m, class_of(s));
    if (inside.empty()) continue;
    m = inside.weight() >= outside.weight() ? std::move(inside) : std::move(outside);
  }
  if (m.weight() < kMinRunWeight) return false;
  run.runs = index.runs(m);
  ws_.relation.assign(classes.size(), 0);
  // Follow the run: S(k+1) is S(k) after any character of M. It ends when no stack takes M
  // (exact), when the set repeats (a class repeated without bound), when it is longer than any
  // token, or when a set no longer takes M uniformly (then only the characters so far count).
  const uint32_t c = m.first();
  const std::vector<Stack>* cur = &stacks_;
  run.limit = 0;
  run.exact = false;
  for (;;) {
    if (run.limit >= run.runs->max_chars) {
      run.limit = kUnbounded;
      break;
    }
    std::vector<Stack>& next = ws_.chain[run.limit & 1];
    advance(*cur, c, next);
    if (next.empty()) {
      run.exact = true;
      break;
    }
    ++run.limit;
    if (next == *cur) {
      run.limit = kUnbounded;
      break;
    }
    if (!uniform(next, m)) break;
    cur = &next;
  }
  return true;
}

// ---- Program ----

namespace {
constexpr size_t kMaxCachedMasks = 8192;
}

std::shared_ptr<const std::vector<uint64_t>> Program::cached(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

void Program::store(const std::string& key, std::shared_ptr<const std::vector<uint64_t>> mask) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (cache_.size() >= kMaxCachedMasks) cache_.clear();
  cache_.emplace(key, std::move(mask));
}

size_t Program::cache_size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_.size();
}

std::unique_ptr<sample::Constraint> Program::make() const {
  return std::make_unique<GrammarConstraint>(shared_from_this());
}

sample::ConstraintFactory Program::factory() const {
  return [self = shared_from_this()] { return self->make(); };
}

// ---- GrammarConstraint ----

GrammarConstraint::GrammarConstraint(std::shared_ptr<const Program> program)
    : program_(std::move(program)), matcher_(std::shared_ptr<const Grammar>(program_, &program_->grammar())) {}

std::shared_ptr<const std::vector<uint64_t>> GrammarConstraint::allowed() {
  matcher_.key(key_);  // a buffer kept across tokens: no allocation once it has grown
  const std::string& key = key_;
  if (auto hit = program_->cached(key)) return hit;
  auto mask = std::make_shared<std::vector<uint64_t>>();
  matcher_.compute_mask(program_->index(), *mask);
  program_->store(key, mask);
  return mask;
}

void GrammarConstraint::mask(std::span<float> logits) {
  const TokenIndex& index = program_->index();
  constexpr float kOff = -std::numeric_limits<float>::infinity();
  const size_t n = std::min(logits.size(), static_cast<size_t>(index.n_vocab()));
  for (size_t i = n; i < logits.size(); ++i) logits[i] = kOff;
  std::shared_ptr<const std::vector<uint64_t>> allowed;
  bool any = false;
  if (!ended_ && matcher_.alive()) {
    allowed = this->allowed();
    any = std::any_of(allowed->begin(), allowed->end(), [](uint64_t w) { return w != 0; });
  }
  if (!any) {  // ended, or nothing can follow: only the end of generation
    std::vector<float> keep;
    for (int32_t t : index.eog()) keep.push_back(static_cast<size_t>(t) < n ? logits[static_cast<size_t>(t)] : kOff);
    std::fill(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(n), kOff);
    for (size_t k = 0; k < keep.size(); ++k) {
      const auto t = static_cast<size_t>(index.eog()[k]);
      if (t < n) logits[t] = keep[k];
    }
    return;
  }
  const std::vector<uint64_t>& bits = *allowed;
  float* out = logits.data();
  for (size_t w = 0; w * 64 < n; ++w) {
    const uint64_t word = bits[w];
    const size_t base = w * 64;
    const size_t len = std::min<size_t>(64, n - base);
    if (word == 0) {
      std::fill(out + base, out + base + len, kOff);  // the common case: nothing allowed here
      continue;
    }
    uint64_t off = ~word;
    while (off) {
      const size_t t = base + static_cast<size_t>(__builtin_ctzll(off));
      off &= off - 1;
      if (t >= n) break;
      out[t] = kOff;
    }
  }
}

void GrammarConstraint::accept(int32_t token) {
  if (ended_) return;
  if (program_->index().is_eog(token)) {
    ended_ = true;
    return;
  }
  matcher_.feed(program_->index().piece(token));
}

}  // namespace owl::constrain

namespace owl::constrain {

namespace {
// Classes whose runs compile() makes ahead, widest first: enough for JSON grammars and most
// patterns, while a grammar of many distinct classes leaves the rest to the first mask needing them.
constexpr size_t kMaxPreparedRuns = 16;
}  // namespace

core::Result<std::shared_ptr<const Program>> compile(std::string_view gbnf, std::shared_ptr<const TokenIndex> index) {
  auto grammar = Grammar::parse(gbnf);
  if (!grammar.ok()) return grammar.error();
  // A class's runs cost a pass over the trie (about a millisecond for a wide class and a 50k
  // vocabulary): made here, and kept by the index for later grammars, they are not paid by the
  // first token that meets the class.
  std::vector<const CharClass*> wide;
  for (const CharClass& c : (*grammar)->classes()) {
    if (c.weight() >= kMinRunWeight) wide.push_back(&c);
  }
  std::stable_sort(wide.begin(), wide.end(), [](const CharClass* a, const CharClass* b) { return a->weight() > b->weight(); });
  if (wide.size() > kMaxPreparedRuns) wide.resize(kMaxPreparedRuns);
  for (const CharClass* c : wide) index->runs(*c);
  return std::shared_ptr<const Program>(std::make_shared<Program>(std::move(*grammar), std::move(index)));
}

}  // namespace owl::constrain
