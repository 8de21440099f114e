#include "serve/engine.h"

#include <algorithm>

namespace owl::serve {
namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
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

// A sequence slot of the KV cache and, while busy, the choice it computes.
struct Engine::Slot {
  int id = 0;
  std::vector<int32_t> cached;  // tokens the slot's KV cache holds, positions 0..size-1
  uint64_t last_used = 0;       // admission counter when last taken (least recently used goes first)
  bool busy = false;
  // While busy:
  Pending job;
  size_t n_prompt_done = 0;     // prompt tokens in `cached`; the prompt is prefilled when == prompt size
  int32_t next_token = -1;      // sampled, to be computed by the next step
  std::optional<sample::Sampler> sampler;
  std::optional<tokenizer::Detokenizer> detok;
  std::optional<sample::StopMatcher> stop;
  ChoiceStats stats;

  bool prefilling() const { return n_prompt_done < job.params.prompt.size(); }
};

Engine::Engine(const model::Model& model, const tokenizer::Tokenizer& tokenizer, Metrics& metrics,
               std::unique_ptr<model::Context> ctx, const EngineOptions& options)
    : model_(model), tokenizer_(tokenizer), metrics_(metrics), options_(options), ctx_(std::move(ctx)) {
  for (int i = 0; i < options_.n_parallel; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->id = i;
  }
  logits_.resize(static_cast<size_t>(options_.n_parallel) * static_cast<size_t>(model_.config.n_vocab));
  gauges_.n_slots = options_.n_parallel;
  gauges_.kv_capacity = ctx_->kv.n_ctx() * options_.n_parallel;
  gauges_.kv_bytes = static_cast<int64_t>(ctx_->kv.bytes());
  thread_ = std::thread([this] { run(); });
}

core::Result<std::unique_ptr<Engine>> Engine::make(const model::Model& model, const tokenizer::Tokenizer& tokenizer,
                                                   Metrics& metrics, EngineOptions options) {
  if (options.step_tokens == 0) options.step_tokens = std::max<int64_t>(kDefaultStepTokens, options.n_parallel);
  if (options.n_parallel < 1 || options.n_parallel > 256) {
    return core::make_error("engine: --parallel {} out of range 1..256", options.n_parallel);
  }
  if (options.step_tokens < options.n_parallel) {
    return core::make_error("engine: step tokens {} below --parallel {}", options.step_tokens, options.n_parallel);
  }
  if (options.step_tokens > kMaxStepTokens) {
    return core::make_error("engine: step tokens {} above the limit of {}", options.step_tokens, kMaxStepTokens);
  }
  if (options.max_queue < 0) return core::make_error("engine: queue size {} is negative", options.max_queue);
  auto ctx = model::make_context(model, {.n_ctx = options.n_ctx,
                                         .n_seq = options.n_parallel,
                                         // a step's tokens, the finishing slack included (build_batch)
                                         .n_batch = options.step_tokens + options.step_tokens / 4,
                                         .n_threads = options.n_threads});
  if (!ctx) return ctx.error();
  return std::unique_ptr<Engine>(new Engine(model, tokenizer, metrics, std::move(*ctx), options));
}

Engine::~Engine() {
  stop(true);
  if (thread_.joinable()) thread_.join();
}

SubmitResult Engine::submit(std::vector<ChoiceParams> choices, std::shared_ptr<RequestStream> stream) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return SubmitResult::kStopping;
    const auto in_system = static_cast<int64_t>(queue_.size()) + running_ + static_cast<int64_t>(choices.size());
    if (in_system > options_.n_parallel + options_.max_queue) return SubmitResult::kQueueFull;
    for (size_t i = 0; i < choices.size(); ++i) {
      queue_.push_back(Pending{std::move(choices[i]), stream, static_cast<int>(i)});
    }
  }
  wake_.notify_one();
  return SubmitResult::kAccepted;
}

void Engine::stop(bool cancel) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    cancel_all_ = cancel_all_ || cancel;
  }
  wake_.notify_one();
}

bool Engine::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return idle_.wait_for(lock, timeout, [&] { return queue_.empty() && running_ == 0; });
}

EngineGauges Engine::gauges() const {
  std::lock_guard<std::mutex> lock(mutex_);
  EngineGauges g = gauges_;
  g.queued = static_cast<int64_t>(queue_.size());
  g.running = running_;
  return g;
}

void Engine::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return !queue_.empty() || running_ > 0 || stopping_; });
      if (stopping_ && queue_.empty() && running_ == 0) break;
    }
    step();
  }
}

void Engine::step() {
  drop_cancelled();
  admit();
  const int64_t n_tokens = build_batch();
  if (n_tokens > 0) {
    const auto start = Clock::now();
    const core::Status status = model::forward(model_, batch_, *ctx_, logits_.data());
    const double seconds = seconds_between(start, Clock::now());
    metrics_.count_step(n_tokens, seconds);
    step_cost_.observe(n_tokens, seconds);
    if (status) {
      sample_outputs();
    } else {
      fail_batch(status.message());
    }
  }
  publish_gauges();
}

void Engine::drop_cancelled() {
  std::vector<Pending> dropped;
  bool cancel_all = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_all = cancel_all_;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (cancel_all || it->stream->cancelled()) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Pending& p : dropped) {
    Event e{.kind = Event::Kind::kEnd, .index = p.index, .finish = sample::FinishReason::kCancelled};
    e.stats.n_prompt = static_cast<int64_t>(p.params.prompt.size());
    e.stats.t_end = Clock::now();
    p.stream->push(std::move(e));
  }
  for (auto& slot : slots_) {
    if (slot->busy && (cancel_all || slot->job.stream->cancelled())) finish(*slot, sample::FinishReason::kCancelled);
  }
  if (!dropped.empty()) idle_.notify_all();
}

void Engine::admit() {
  std::vector<Pending> admitted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto n_free = std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s->busy; });
    while (!queue_.empty() && static_cast<int64_t>(admitted.size()) < n_free) {
      admitted.push_back(std::move(queue_.front()));
      queue_.pop_front();
      ++running_;
    }
  }
  for (Pending& p : admitted) {
    const std::vector<int32_t>& prompt = p.params.prompt;
    if (prompt.empty() || static_cast<int64_t>(prompt.size()) >= ctx_->kv.n_ctx()) {
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
      p.stream->push(Event{.kind = Event::Kind::kError, .index = p.index,
                           .text = fmt::format("prompt of {} tokens does not fit the context of {} tokens",
                                               prompt.size(), ctx_->kv.n_ctx())});
      continue;
    }
    // The free slot sharing the longest prefix (least recently used on ties), and the busy one.
    const size_t limit = prompt.size() - 1;  // the last prompt token is computed for its logits
    Slot* best_free = nullptr;
    Slot* emptiest_free = nullptr;
    size_t best_free_len = 0, emptiest_len = 0, best_busy_len = 0;
    Slot* best_busy = nullptr;
    for (auto& s : slots_) {
      const size_t len = std::min(common_prefix(s->cached, prompt), limit);
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
      ctx_->kv.copy_prefix(best_busy->id, slot.id, static_cast<int64_t>(keep));
      slot.cached.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(keep));
    } else {
      ctx_->kv.truncate(slot.id, static_cast<int64_t>(keep));
      slot.cached.resize(keep);
    }
    slot.n_prompt_done = keep;
    start(slot, std::move(p));
  }
}

void Engine::start(Slot& slot, Pending pending) {
  slot.busy = true;
  slot.last_used = ++admissions_;
  slot.job = std::move(pending);
  const ChoiceParams& params = slot.job.params;
  slot.next_token = -1;
  slot.sampler.emplace(params.sampling, model_.config.n_vocab);
  for (int32_t t : params.prompt) slot.sampler->accept(t);
  slot.detok.emplace(tokenizer_);
  slot.stop.emplace(params.stop);
  slot.stats = ChoiceStats{};
  slot.stats.n_prompt = static_cast<int64_t>(params.prompt.size());
  slot.stats.n_cached = static_cast<int64_t>(slot.n_prompt_done);
  slot.stats.t_admitted = Clock::now();
  slot.stats.slot = slot.id;
  metrics_.add_prompt_tokens(slot.stats.n_prompt - slot.stats.n_cached, slot.stats.n_cached);
}

int64_t Engine::build_batch() {
  batch_.clear();
  batch_slots_.clear();
  int64_t budget = options_.step_tokens;
  for (auto& s : slots_) {  // every generating sequence's next token first: streams never stall
    if (!s->busy || s->prefilling()) continue;
    batch_.add(s->next_token, static_cast<int32_t>(s->cached.size()), s->id, true);
    s->cached.push_back(s->next_token);
    batch_slots_.push_back(s.get());
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
  const auto slack = static_cast<size_t>(options_.step_tokens / 4);
  // Prompts that fit take whole steps, as many per step as keeps their times to first token
  // least (prompts_for_step); a step's decode tokens count in its setup. A long prompt first
  // in line is computed in chunks that fill the budget, with the prompts after it.
  size_t whole = 0;
  if (budget > 0 && !prefilling.empty()) {
    std::vector<int64_t> remaining;
    for (Slot* s : prefilling) remaining.push_back(static_cast<int64_t>(s->job.params.prompt.size() - s->n_prompt_done));
    const double setup = step_cost_.setup() + static_cast<double>(batch_.size());
    whole = prompts_for_step(remaining, budget + static_cast<int64_t>(slack), setup);
    if (whole > 0) prefilling.resize(whole);
  }
  for (Slot* s : prefilling) {  // then prompt chunks, first admitted first
    const std::vector<int32_t>& prompt = s->job.params.prompt;
    const size_t left = prompt.size() - s->n_prompt_done;
    size_t n = left;  // a planned prompt whole; otherwise a chunk of the budget
    if (whole == 0) {
      if (budget <= 0) break;
      n = std::min(static_cast<size_t>(budget), left);
      if (left - n <= slack) n = left;
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t at = s->n_prompt_done + i;
      batch_.add(prompt[at], static_cast<int32_t>(at), s->id, at + 1 == prompt.size());
      s->cached.push_back(prompt[at]);
    }
    s->n_prompt_done += n;
    budget -= static_cast<int64_t>(n);
    if (!s->prefilling()) batch_slots_.push_back(s);
  }
  return batch_.size();
}

void Engine::sample_outputs() {
  const auto n_vocab = static_cast<size_t>(model_.config.n_vocab);
  for (size_t i = 0; i < batch_slots_.size(); ++i) advance(*batch_slots_[i], logits_.data() + i * n_vocab);
}

void Engine::advance(Slot& slot, const float* logits) {
  const sample::Sampled s = slot.sampler->sample(logits);
  slot.sampler->accept(s.token);
  if (slot.stats.n_generated++ == 0) slot.stats.t_first_token = Clock::now();
  metrics_.add_generated_tokens(1);
  const ChoiceParams& params = slot.job.params;
  const bool eog = !params.ignore_eos && tokenizer_.is_eog(s.token);
  std::string text = eog ? std::string() : slot.stop->push(slot.detok->push(s.token));
  const bool stopped = eog || slot.stop->stopped();
  // The sampled token would be computed at position cached.size(): it must fit the context.
  const bool length = (params.max_tokens >= 0 && slot.stats.n_generated >= params.max_tokens) ||
                      static_cast<int64_t>(slot.cached.size()) >= ctx_->kv.n_ctx();
  if (stopped || length) text += slot.stop->push(slot.detok->finish()) + slot.stop->flush();
  if (!eog || !text.empty()) {
    slot.job.stream->push(Event{.kind = Event::Kind::kToken, .index = slot.job.index, .text = std::move(text),
                                .has_token = !eog, .sampled = s});
  }
  if (stopped || length) {
    finish(slot, stopped ? sample::FinishReason::kStop : sample::FinishReason::kLength);
  } else {
    slot.next_token = s.token;
  }
}

void Engine::finish(Slot& slot, sample::FinishReason reason) {
  ChoiceStats& st = slot.stats;
  st.t_end = Clock::now();
  const Clock::time_point arrival = slot.job.stream->t_arrival;
  const double tpot = st.n_generated > 1 ? seconds_between(st.t_first_token, st.t_end) / static_cast<double>(st.n_generated - 1) : 0.0;
  metrics_.observe_latency(seconds_between(arrival, st.t_first_token), tpot, seconds_between(arrival, st.t_end),
                           st.n_generated > 0);
  {  // before the end event: a client that reads the gauges after its reply sees the slot free
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
  }
  slot.job.stream->push(Event{.kind = Event::Kind::kEnd, .index = slot.job.index, .finish = reason, .stats = st});
  slot.busy = false;
  slot.job = Pending{};
  slot.sampler.reset();
  slot.detok.reset();
  slot.stop.reset();
  idle_.notify_all();
}

void Engine::fail_batch(const std::string& message) {
  for (auto& s : slots_) {
    if (!s->busy) continue;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
    }
    s->job.stream->push(Event{.kind = Event::Kind::kError, .index = s->job.index, .text = message});
    ctx_->kv.truncate(s->id, 0);
    s->cached.clear();
    s->busy = false;
    s->job = Pending{};
  }
  idle_.notify_all();
}

void Engine::publish_gauges() {
  int64_t active = 0, cached = 0;
  for (const auto& s : slots_) {
    cached += static_cast<int64_t>(s->cached.size());
    if (s->busy) active += static_cast<int64_t>(s->cached.size());
  }
  std::lock_guard<std::mutex> lock(mutex_);
  gauges_.kv_tokens_active = active;
  gauges_.kv_tokens_cached = cached;
}

}  // namespace owl::serve
