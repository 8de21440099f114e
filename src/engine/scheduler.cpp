#include "engine/scheduler.h"

#include <algorithm>

#include <fmt/format.h>

namespace owl::engine {
namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Whether two sequences run with the same adapters at the same scales (null: the base model).
bool same_adapters(const model::AdapterSet* a, const model::AdapterSet* b) {
  if (a == b) return true;
  if (a == nullptr || b == nullptr || a->adapters.size() != b->adapters.size()) return false;
  for (size_t i = 0; i < a->adapters.size(); ++i) {
    if (a->adapters[i].first != b->adapters[i].first || a->adapters[i].second != b->adapters[i].second) return false;
  }
  return true;
}

}  // namespace

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

size_t prompts_for_step(const std::vector<int64_t>& remaining, int64_t limit, double setup) {
  // cost[i]: the least sum of times to first token of prompts i.. when the clock starts with
  // them (n - i prompts wait through each step); first[i]: how many the first step takes.
  size_t n = 0;
  while (n < remaining.size() && remaining[n] <= limit) ++n;  // the run of prompts that fit
  if (n == 0) return 0;
  std::vector<double> cost(n + 1, 0.0);
  std::vector<size_t> first(n + 1, 0);
  for (size_t i = n; i-- > 0;) {
    cost[i] = -1.0;
    int64_t tokens = 0;
    for (size_t j = i; j < n; ++j) {
      tokens += remaining[j];
      if (tokens > limit) break;
      const double c = static_cast<double>(n - i) * (setup + static_cast<double>(tokens)) + cost[j + 1];
      if (cost[i] < 0 || c < cost[i]) cost[i] = c, first[i] = j + 1 - i;
    }
  }
  return first[0];
}

void StepCost::observe(int64_t tokens, double seconds) {
  constexpr double kKeep = 0.95;  // each older step weighs this much less: about the last 20
  const double t = static_cast<double>(tokens);
  w_ = kKeep * w_ + 1;
  t_ = kKeep * t_ + t;
  s_ = kKeep * s_ + seconds;
  tt_ = kKeep * tt_ + t * t;
  ts_ = kKeep * ts_ + t * seconds;
}

double StepCost::setup() const {
  if (w_ == 0) return kDefaultSetup;
  const double mt = t_ / w_, ms = s_ / w_;
  const double var = tt_ / w_ - mt * mt;
  if (var < 1.0) return kDefaultSetup;  // steps of one size: no line through them
  const double per_token = (ts_ / w_ - mt * ms) / var;
  if (per_token <= 0) return kDefaultSetup;
  return std::clamp((ms - per_token * mt) / per_token, 0.0, static_cast<double>(kMaxStepTokens));
}

// A sequence slot of the KV cache and, while busy, the sequence it computes.
struct Scheduler::Slot {
  int id = 0;
  std::vector<int32_t> cached;  // tokens the slot's KV cache holds, positions 0..size-1
  std::string adapter_key;      // the adapters `cached` was computed under
  uint64_t last_used = 0;       // admission counter when last taken (least recently used goes first)
  bool busy = false;
  // While busy:
  Job job;
  size_t n_prompt_done = 0;     // prompt tokens in `cached`; the prompt is prefilled when == prompt size
  int32_t next_token = -1;      // sampled, to be computed by the next step
  std::optional<SequenceDecoder> decoder;
  ChoiceStats stats;
  std::vector<sample::Sampled> prompt_logprobs;  // delivered with the first event

  bool prefilling() const { return n_prompt_done < job.request.prompt.size(); }
  // The prefix of `prompt` this slot holds under the adapters `key`.
  size_t shared(const std::vector<int32_t>& prompt, const std::string& key) const {
    return key == adapter_key ? common_prefix(cached, prompt) : 0;
  }
};

Scheduler::Scheduler(const model::Model& model, const tokenizer::Tokenizer& tokenizer, model::Context& ctx,
                     int64_t step_tokens, Observer* observer)
    : model_(model), tokenizer_(tokenizer), ctx_(ctx), step_tokens_(step_tokens),
      observer_(observer ? observer : &no_observer_) {
  for (int i = 0; i < ctx_.kv.n_seq(); ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->id = i;
  }
  logits_.resize(slots_.size() * static_cast<size_t>(model_.config.n_vocab));
  step_adapters_.reserve(slots_.size());
}

void Scheduler::note_adapters(const model::AdapterSet* set) {
  for (const model::AdapterSet* seen : step_adapters_) {
    if (same_adapters(seen, set)) return;
  }
  step_adapters_.push_back(set);
}

Scheduler::~Scheduler() = default;

int Scheduler::n_free() const {
  return static_cast<int>(std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s->busy; }));
}

bool Scheduler::busy() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->busy; });
}

void Scheduler::assume_cached(std::vector<int32_t> tokens, std::string adapter_key) {
  Slot& slot = *slots_.front();
  slot.cached = std::move(tokens);
  slot.adapter_key = std::move(adapter_key);
}

void Scheduler::admit(Job job) {
  const std::vector<int32_t>& prompt = job.request.prompt;
  if (prompt.empty() || static_cast<int64_t>(prompt.size()) >= ctx_.kv.n_ctx()) {
    observer_->on_released();
    job.sink->push(Event{.kind = Event::Kind::kError, .index = job.index,
                         .text = fmt::format("prompt of {} tokens does not fit the context of {} tokens",
                                             prompt.size(), ctx_.kv.n_ctx())});
    return;
  }
  const std::string key = model::adapter_key(job.request.adapters.get());
  // The free slot sharing the longest prefix (least recently used on ties), and the busy one.
  // The last prompt token is computed for its logits, and so is every position whose logits
  // score a prompt token.
  size_t limit = prompt.size() - 1;
  if (job.request.prompt_logprobs_from >= 0) {
    limit = std::min(limit, static_cast<size_t>(std::max<int64_t>(job.request.prompt_logprobs_from, 1) - 1));
  }
  Slot* best_free = nullptr;
  Slot* emptiest_free = nullptr;
  size_t best_free_len = 0, emptiest_len = 0, best_busy_len = 0;
  Slot* best_busy = nullptr;
  for (auto& s : slots_) {
    const size_t len = std::min(s->shared(prompt, key), limit);
    if (s->busy) {
      if (len > best_busy_len) best_busy = s.get(), best_busy_len = len;
      continue;
    }
    if (!best_free || len > best_free_len || (len == best_free_len && s->last_used < best_free->last_used)) {
      best_free = s.get(), best_free_len = len;
    }
    if (!emptiest_free || len < emptiest_len || (len == emptiest_len && s->last_used < emptiest_free->last_used)) {
      emptiest_free = s.get(), emptiest_len = len;
    }
  }
  Slot& slot = best_busy_len > best_free_len ? *emptiest_free : *best_free;
  size_t keep = best_free_len;
  if (&slot == emptiest_free && best_busy_len > best_free_len) {
    keep = best_busy_len;
    ctx_.kv.copy_prefix(best_busy->id, slot.id, static_cast<int64_t>(keep));
    slot.cached.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(keep));
  } else {
    ctx_.kv.truncate(slot.id, static_cast<int64_t>(keep));
    slot.cached.resize(keep);
  }
  slot.adapter_key = key;
  slot.n_prompt_done = keep;
  slot.busy = true;
  slot.last_used = ++admissions_;
  slot.job = std::move(job);
  const SequenceRequest& request = slot.job.request;
  slot.next_token = -1;
  slot.decoder.emplace(tokenizer_, request.params, model_.config.n_vocab, request.prompt);
  slot.stats = ChoiceStats{};
  slot.prompt_logprobs.clear();
  slot.stats.n_prompt = static_cast<int64_t>(request.prompt.size());
  slot.stats.n_cached = static_cast<int64_t>(slot.n_prompt_done);
  slot.stats.t_admitted = Clock::now();
  slot.stats.slot = slot.id;
  observer_->on_admitted(slot.stats.n_prompt - slot.stats.n_cached, slot.stats.n_cached);
}

void Scheduler::cancel(bool all) {
  for (auto& slot : slots_) {
    if (slot->busy && (all || slot->job.sink->cancelled())) finish(*slot, FinishReason::kCancelled);
  }
}

int64_t Scheduler::step() {
  const int64_t n_tokens = build_batch();
  if (n_tokens == 0) return 0;
  const auto start = Clock::now();
  const size_t need = batch_rows_.size() * static_cast<size_t>(model_.config.n_vocab);
  if (logits_.size() < need) logits_.resize(need);  // prompt positions that score their next token
  const core::Status status = model::forward(model_, batch_, ctx_, logits_.data());
  const double seconds = seconds_between(start, Clock::now());
  observer_->on_step(n_tokens, seconds);
  observer_->on_step_adapters(static_cast<int>(step_adapters_.size()));
  step_cost_.observe(n_tokens, seconds);
  if (!status) {
    fail_batch(status.message());
    return n_tokens;
  }
  const auto n_vocab = static_cast<size_t>(model_.config.n_vocab);
  for (size_t i = 0; i < batch_rows_.size(); ++i) {
    const Row& row = batch_rows_[i];
    const float* logits = logits_.data() + i * n_vocab;
    if (row.prompt_pos < 0) {
      advance(*row.slot, logits);
      continue;
    }
    const SequenceRequest& request = row.slot->job.request;
    sample::Sampled scored;
    scored.token = request.prompt[static_cast<size_t>(row.prompt_pos) + 1];
    sample::token_logprobs(logits, model_.config.n_vocab, request.prompt_top_logprobs, scored, order_);
    row.slot->prompt_logprobs.push_back(std::move(scored));
  }
  return n_tokens;
}

int64_t Scheduler::build_batch() {
  batch_.clear();
  batch_rows_.clear();
  step_adapters_.clear();
  int64_t budget = step_tokens_;
  for (auto& s : slots_) {  // every generating sequence's next token first: streams never stall
    if (!s->busy || s->prefilling()) continue;
    batch_.add(s->next_token, static_cast<int32_t>(s->cached.size()), s->id, true, s->job.request.adapters.get());
    note_adapters(s->job.request.adapters.get());
    s->cached.push_back(s->next_token);
    batch_rows_.push_back({s.get(), -1});
    --budget;
  }
  std::vector<Slot*> prefilling;
  for (auto& s : slots_) {
    if (s->busy && s->prefilling()) prefilling.push_back(s.get());
  }
  std::sort(prefilling.begin(), prefilling.end(), [](Slot* a, Slot* b) { return a->last_used < b->last_used; });
  // A prompt whose rest ends within a quarter of the budget past it is finished in this step:
  // its first token comes a whole step sooner (in a burst of short prompts, one more first
  // token per step) for at most a quarter more of a step's time.
  const auto slack = static_cast<size_t>(step_tokens_ / 4);
  // Prompts that fit take whole steps, as many per step as keeps their times to first token
  // least (prompts_for_step); a step's decode tokens count in its setup. A long prompt first
  // in line is computed in chunks that fill the budget, with the prompts after it.
  size_t whole = 0;
  if (budget > 0 && !prefilling.empty()) {
    std::vector<int64_t> remaining;
    for (Slot* s : prefilling) remaining.push_back(static_cast<int64_t>(s->job.request.prompt.size() - s->n_prompt_done));
    const double setup = step_cost_.setup() + static_cast<double>(batch_.size());
    whole = prompts_for_step(remaining, budget + static_cast<int64_t>(slack), setup);
    if (whole > 0) prefilling.resize(whole);
  }
  for (Slot* s : prefilling) {  // then prompt chunks, first admitted first
    const std::vector<int32_t>& prompt = s->job.request.prompt;
    const size_t left = prompt.size() - s->n_prompt_done;
    size_t n = left;  // a planned prompt whole; otherwise a chunk of the budget
    if (whole == 0) {
      if (budget <= 0) break;
      n = std::min(static_cast<size_t>(budget), left);
      if (left - n <= slack) n = left;
    }
    const int64_t score_from = s->job.request.prompt_logprobs_from;
    for (size_t i = 0; i < n; ++i) {
      const size_t at = s->n_prompt_done + i;
      const bool last = at + 1 == prompt.size();
      // Position at's logits give the log-probability of prompt token at + 1.
      const bool scores = !last && score_from >= 0 && static_cast<int64_t>(at) + 1 >= score_from;
      batch_.add(prompt[at], static_cast<int32_t>(at), s->id, last || scores, s->job.request.adapters.get());
      s->cached.push_back(prompt[at]);
      if (scores) batch_rows_.push_back({s, static_cast<int64_t>(at)});
    }
    if (n > 0) note_adapters(s->job.request.adapters.get());
    s->n_prompt_done += n;
    budget -= static_cast<int64_t>(n);
    if (!s->prefilling()) batch_rows_.push_back({s, -1});
  }
  return batch_.size();
}

void Scheduler::advance(Slot& slot, const float* logits) {
  if (slot.job.request.params.max_tokens == 0) {  // the prompt only (scored): nothing is sampled
    finish(slot, FinishReason::kLength);
    return;
  }
  SequenceDecoder::Output out = slot.decoder->next(logits, static_cast<int64_t>(slot.cached.size()), ctx_.kv.n_ctx());
  const int32_t token = out.sampled.token;
  if (slot.stats.n_generated++ == 0) slot.stats.t_first_token = Clock::now();
  observer_->on_tokens(1);
  slot.job.sink->push(Event{.kind = Event::Kind::kToken, .index = slot.job.index, .text = std::move(out.text),
                            .has_token = !out.eog, .sampled = std::move(out.sampled),
                            .prompt_logprobs = std::move(slot.prompt_logprobs)});
  slot.prompt_logprobs.clear();
  if (out.finish) {
    finish(slot, *out.finish);
  } else {
    slot.next_token = token;
  }
}

void Scheduler::finish(Slot& slot, FinishReason reason) {
  ChoiceStats& st = slot.stats;
  st.t_end = Clock::now();
  observer_->on_finished(st, slot.job.sink->t_arrival);
  observer_->on_released();  // before the end event: a client that then reads the gauges sees the slot free
  slot.job.sink->push(Event{.kind = Event::Kind::kEnd, .index = slot.job.index, .finish = reason, .stats = st,
                            .prompt_logprobs = std::move(slot.prompt_logprobs)});
  slot.prompt_logprobs.clear();
  slot.busy = false;
  slot.job = Job{};
  slot.decoder.reset();
}

void Scheduler::fail_batch(const std::string& message) {
  for (auto& s : slots_) {
    if (!s->busy) continue;
    observer_->on_released();
    s->job.sink->push(Event{.kind = Event::Kind::kError, .index = s->job.index, .text = message});
    ctx_.kv.truncate(s->id, 0);
    s->cached.clear();
    s->busy = false;
    s->job = Job{};
    s->decoder.reset();
  }
}

void Scheduler::fill_gauges(Gauges& g) const {
  int64_t active = 0, cached = 0;
  for (const auto& s : slots_) {
    cached += static_cast<int64_t>(s->cached.size());
    if (s->busy) active += static_cast<int64_t>(s->cached.size());
  }
  g.n_slots = static_cast<int64_t>(slots_.size());
  g.kv_capacity = ctx_.kv.n_ctx() * g.n_slots;
  g.kv_bytes = static_cast<int64_t>(ctx_.kv.bytes());
  g.kv_tokens_active = active;
  g.kv_tokens_cached = cached;
}

}  // namespace owl::engine
