#include "engine/engine.h"

#include <algorithm>

namespace owl::engine {

namespace {

// A prompt of a few tokens on sequence 0, then one decode step. The KV cache is emptied after,
// as a new context's is: the scheduler, which never saw these tokens, starts from nothing.
core::Result<double> warm_up(const model::Model& model, model::Context& ctx) {
  const auto start = Clock::now();
  const auto n_prompt = static_cast<int32_t>(std::min<int64_t>({16, ctx.kv.n_ctx() - 1, ctx.options.n_batch}));
  const auto token = static_cast<int32_t>(std::min<int64_t>(1, model.config.n_vocab - 1));
  std::vector<float> logits(static_cast<size_t>(model.config.n_vocab));
  model::Batch batch;
  for (int32_t i = 0; i < n_prompt; ++i) batch.add(token, i, 0, i == n_prompt - 1);
  if (n_prompt > 0) OWL_TRY(model::forward(model, batch, ctx, logits.data()));
  batch.clear();
  batch.add(token, std::max(n_prompt, 0), 0, true);
  OWL_TRY(model::forward(model, batch, ctx, logits.data()));
  ctx.kv.clear();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Engine::Engine(const model::Model& model, const tokenizer::Tokenizer& tokenizer, Observer* observer,
               std::unique_ptr<model::Context> ctx, const EngineOptions& options)
    : observer_(observer), options_(options), ctx_(std::move(ctx)),
      scheduler_(model, tokenizer, *ctx_, options.step_tokens, this) {
  scheduler_.fill_gauges(gauges_);
  thread_ = std::thread([this] { run(); });
}

core::Result<std::unique_ptr<Engine>> Engine::make(const model::Model& model, const tokenizer::Tokenizer& tokenizer,
                                                   Observer* observer, EngineOptions options) {
  if (options.step_tokens == 0) options.step_tokens = std::max<int64_t>(kDefaultStepTokens, options.n_parallel);
  if (auto s = options.validate(); !s) return s.error();
  auto ctx = model::make_context(model, {.n_ctx = options.n_ctx,
                                         .n_seq = options.n_parallel,
                                         // a step's tokens, the finishing slack included (Scheduler::build_batch)
                                         .n_batch = options.step_tokens + options.step_tokens / 4,
                                         .n_threads = options.n_threads,
                                         .batch_invariant = options.batch_invariant});
  if (!ctx) return ctx.error();
  double warm_up_seconds = 0.0;
  if (options.warm_up) {
    auto seconds = warm_up(model, **ctx);
    if (!seconds) return seconds.error();
    warm_up_seconds = *seconds;
  }
  std::unique_ptr<Engine> engine(new Engine(model, tokenizer, observer, std::move(*ctx), options));
  engine->warm_up_seconds_ = warm_up_seconds;
  return engine;
}

core::Status EngineOptions::validate() const {
  if (n_parallel < 1 || n_parallel > kMaxParallel) {
    return core::make_error("engine: --parallel {} out of range 1..{}", n_parallel, kMaxParallel);
  }
  if (n_ctx < 0) return core::make_error("engine: context size {} is negative", n_ctx);
  if (n_threads < 0 || n_threads > model::kMaxThreads) {
    return core::make_error("engine: {} threads out of range 0..{} (0: all cores)", n_threads, model::kMaxThreads);
  }
  if (step_tokens < 0) return core::make_error("engine: step tokens {} is negative", step_tokens);
  if (step_tokens != 0 && step_tokens < n_parallel) {
    return core::make_error("engine: step tokens {} below --parallel {}", step_tokens, n_parallel);
  }
  if (step_tokens > kMaxStepTokens) {
    return core::make_error("engine: step tokens {} above the limit of {}", step_tokens, kMaxStepTokens);
  }
  if (max_queue < 0 || max_queue > kMaxQueue) {
    return core::make_error("engine: queue size {} out of range 0..{}", max_queue, kMaxQueue);
  }
  return {};
}

Engine::~Engine() {
  stop(true);
  if (thread_.joinable()) thread_.join();
}

SubmitResult Engine::submit(std::vector<SequenceRequest> sequences, std::shared_ptr<EventSink> sink) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return SubmitResult::kStopping;
    const auto in_system = static_cast<int64_t>(queue_.size()) + running_ + static_cast<int64_t>(sequences.size());
    if (in_system > options_.n_parallel + options_.max_queue) return SubmitResult::kQueueFull;
    for (size_t i = 0; i < sequences.size(); ++i) {
      queue_.push_back(Job{std::move(sequences[i]), sink, static_cast<int>(i)});
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

Gauges Engine::gauges() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Gauges g = gauges_;
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
  scheduler_.step();
  Gauges g;
  scheduler_.fill_gauges(g);
  std::lock_guard<std::mutex> lock(mutex_);
  gauges_.kv_tokens_active = g.kv_tokens_active;
  gauges_.kv_tokens_cached = g.kv_tokens_cached;
}

void Engine::drop_cancelled() {
  std::vector<Job> dropped;
  bool cancel_all = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_all = cancel_all_;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (cancel_all || it->sink->cancelled()) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Job& job : dropped) {
    Event e{.kind = Event::Kind::kEnd, .index = job.index, .finish = FinishReason::kCancelled};
    e.stats.n_prompt = static_cast<int64_t>(job.request.prompt.size());
    e.stats.t_end = Clock::now();
    job.sink->push(std::move(e));
  }
  scheduler_.cancel(cancel_all);
  if (!dropped.empty()) idle_.notify_all();
}

void Engine::admit() {
  std::vector<Job> admitted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const int n_free = scheduler_.n_free();
    while (!queue_.empty() && static_cast<int>(admitted.size()) < n_free) {
      admitted.push_back(std::move(queue_.front()));
      queue_.pop_front();
      ++running_;
    }
  }
  for (Job& job : admitted) scheduler_.admit(std::move(job));
}

void Engine::on_admitted(int64_t computed, int64_t cached) {
  if (observer_) observer_->on_admitted(computed, cached);
}
void Engine::on_step(int64_t n_tokens, double seconds) {
  if (observer_) observer_->on_step(n_tokens, seconds);
}
void Engine::on_tokens(int64_t n) {
  if (observer_) observer_->on_tokens(n);
}
void Engine::on_step_adapters(int n_sets) {
  if (observer_) observer_->on_step_adapters(n_sets);
}
void Engine::on_finished(const ChoiceStats& stats, Clock::time_point arrival) {
  if (observer_) observer_->on_finished(stats, arrival);
}
void Engine::on_released() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
  }
  idle_.notify_all();
}

}  // namespace owl::engine
