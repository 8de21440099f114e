// The engine: one thread that owns a model's Context and drives its Scheduler (scheduler.h),
// with the queue of sequences waiting for a slot. Front ends submit requests from any thread
// and read their events from the sinks they pass.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/events.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "model/forward.h"
#include "tokenizer/tokenizer.h"

namespace owl::engine {

struct EngineOptions {
  int n_parallel = 4;         // sequence slots
  int64_t n_ctx = 0;          // positions per slot; 0: the model's, at most 4096
  int n_threads = 0;          // 0: all cores
  // Tokens one step computes (decode tokens first, then prompt chunks); a prompt that would end
  // within step_tokens / 4 past it is finished in the same step. 0: kDefaultStepTokens, or
  // n_parallel if that is more.
  int64_t step_tokens = 0;
  int max_queue = 64;         // sequences waiting for a slot before submit() refuses
  // A seeded request gives the same tokens and log-probabilities whatever runs beside it
  // (model::ContextOptions::batch_invariant); `owl serve --deterministic`.
  bool batch_invariant = false;
  // Before taking requests, run a short prompt and one decode step on slot 0 (then forget them):
  // the first request finds the weights, the KV cache's first pages, the scratch buffers and the
  // threads as later requests do, instead of paying for touching them (`owl serve`).
  bool warm_up = false;

  // The ranges make() enforces, checkable before a model is loaded; the error names the value.
  core::Status validate() const;
};

enum class SubmitResult { kAccepted, kQueueFull, kStopping };

// Threading: submit(), gauges(), n_ctx(), stop() and wait_idle() may be called from any thread;
// the scheduler, the Context and the observer's calls run on the engine thread.
class Engine : private Observer {
 public:
  // `model`, `tokenizer` and `observer` (may be null) must outlive the engine.
  static core::Result<std::unique_ptr<Engine>> make(const model::Model& model, const tokenizer::Tokenizer& tokenizer,
                                                    Observer* observer, EngineOptions options);
  ~Engine() override;

  // Queues sequences 0..n-1 of one request, all or none; their events go to `sink`.
  SubmitResult submit(std::vector<SequenceRequest> sequences, std::shared_ptr<EventSink> sink);
  // Refuses new work; when `cancel`, ends queued and running sequences as cancelled at the next
  // step. Returns at once; the destructor joins the thread.
  void stop(bool cancel);
  // Waits until no sequence is queued or running, up to `timeout`; true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);

  Gauges gauges() const;
  int64_t n_ctx() const { return ctx_->kv.n_ctx(); }
  // Seconds the warm-up took (0 without one).
  double warm_up_seconds() const { return warm_up_seconds_; }
  const EngineOptions& options() const { return options_; }

 private:
  Engine(const model::Model& model, const tokenizer::Tokenizer& tokenizer, Observer* observer,
         std::unique_ptr<model::Context> ctx, const EngineOptions& options);
  void run();
  void step();
  void drop_cancelled();
  void admit();
  // Observer: forwards to the front end's, and counts sequences leaving their slots.
  void on_admitted(int64_t computed, int64_t cached) override;
  void on_step(int64_t n_tokens, double seconds) override;
  void on_tokens(int64_t n) override;
  void on_step_adapters(int n_sets) override;
  void on_finished(const ChoiceStats& stats, Clock::time_point arrival) override;
  void on_released() override;

  Observer* observer_;
  EngineOptions options_;
  double warm_up_seconds_ = 0.0;
  std::unique_ptr<model::Context> ctx_;
  Scheduler scheduler_;  // engine thread only

  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  bool cancel_all_ = false;
  int64_t running_ = 0;
  Gauges gauges_;

  std::thread thread_;
};

}  // namespace owl::engine
