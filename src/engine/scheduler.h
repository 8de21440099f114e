// The scheduler of continuous batching, without threads or HTTP (vLLM v1's scheduler is the
// model: it knows sequences, tokens computed and a token budget). Each step builds one Batch of
// every running sequence's next token plus prompt chunks of the sequences still prefilling (a
// token budget per step, so a long prompt does not stall running streams; short prompts in as
// many steps as keeps their summed time to first token least, prompts_for_step), runs forward()
// once, and gives each sequence that asked for logits its decode step (decode.h), whose events
// go to the sequence's sink. There are no prefill/decode phases: a sequence has computed some
// of its tokens and the step computes more.
//
// Prefix reuse: every slot keeps the tokens its KV cache holds, after it ends too, with the key
// of the adapters they were computed under. A new sequence takes the free slot whose tokens
// share the longest prefix with its prompt under the same adapters, or copies that prefix from
// a busy slot when one shares more, and computes only the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/decode.h"
#include "engine/events.h"
#include "engine/request.h"
#include "model/forward.h"
#include "tokenizer/tokenizer.h"

namespace owl::engine {

// Steps of this many tokens keep the matmuls efficient, while a burst of short prompts gets its
// first tokens a few prompts at a time rather than all after one long step.
inline constexpr int64_t kDefaultStepTokens = 128;
inline constexpr int64_t kMaxStepTokens = 4096;
inline constexpr int kMaxParallel = 256;     // sequence slots an engine may hold
inline constexpr int kMaxQueue = 65536;      // sequences an engine may queue beyond its slots

// How many of the prompts waiting for their first token (`remaining` tokens each, in admission
// order) the next step finishes: the first group of the split into steps that minimizes the
// sum of their times to first token, when a step takes `setup` plus one per prompt token (in
// the time of one token) and holds at most `limit` prompt tokens. Every waiting prompt waits
// for every step before its own, so small steps help the first prompts and cost the rest a
// setup each. 0 when the first prompt does not fit in `limit` (it is computed in chunks).
size_t prompts_for_step(const std::vector<int64_t>& remaining, int64_t limit, double setup);

// A forward step's duration as setup + tokens x (time of one token): a least-squares line
// through recent steps (exponentially weighted), which mix decode steps of a few tokens with
// prefill steps of many.
class StepCost {
 public:
  void observe(int64_t tokens, double seconds);
  // The setup in token times; kDefaultSetup until the steps seen differ enough in size to fit.
  double setup() const;
  // owl bench pp8 to pp128 of the 1.1B Q4_0 model on 2 cores: 13-20 ms a step plus 1.3-1.6 ms
  // a token.
  static constexpr double kDefaultSetup = 12.0;

 private:
  double w_ = 0, t_ = 0, s_ = 0, tt_ = 0, ts_ = 0;  // weighted sums of 1, tokens, seconds, t^2, t s
};

// Length of the common prefix of two token sequences.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// The engine's state at one moment, read when metrics are scraped.
struct Gauges {
  int64_t queued = 0;           // requests waiting for a sequence slot
  int64_t running = 0;          // sequences being computed
  int64_t n_slots = 0;
  int64_t kv_tokens_active = 0; // positions held by running sequences
  int64_t kv_tokens_cached = 0; // positions held by all slots, idle ones' prefix cache included
  int64_t kv_capacity = 0;      // n_slots * n_ctx
  int64_t kv_bytes = 0;
};

// What the scheduler reports as it works (the server's metrics implement it). Called on the
// thread that drives the scheduler.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_admitted(int64_t computed, int64_t cached) { (void)computed, (void)cached; }
  virtual void on_step(int64_t n_tokens, double seconds) { (void)n_tokens, (void)seconds; }
  virtual void on_tokens(int64_t n) { (void)n; }
  // The step just computed held sequences with `n_sets` different adapter sets (the base model
  // counting as one): more than one means that they shared the step.
  virtual void on_step_adapters(int n_sets) { (void)n_sets; }
  // A sequence ended (any reason); `arrival` is when its request arrived.
  virtual void on_finished(const ChoiceStats& stats, Clock::time_point arrival) { (void)stats, (void)arrival; }
  // A sequence left its slot (ended, failed or refused), before its sink hears of it.
  virtual void on_released() {}
};

// A sequence to compute, where its events go, and its index among its request's choices.
struct Job {
  SequenceRequest request;
  std::shared_ptr<EventSink> sink;
  int index = 0;
};

// Threading: not thread-safe; one thread drives it (the Engine's, or the caller of a Session).
class Scheduler {
 public:
  // One slot per sequence of `ctx`'s KV cache. `model`, `tokenizer`, `ctx` and `observer` (may be
  // null) must outlive the scheduler; `ctx` must hold a step's tokens and their finishing slack
  // (step_tokens + step_tokens / 4) in one batch.
  Scheduler(const model::Model& model, const tokenizer::Tokenizer& tokenizer, model::Context& ctx,
            int64_t step_tokens, Observer* observer);
  ~Scheduler();

  int n_free() const;
  bool busy() const;
  // Starts `job` in a free slot (there must be one); a prompt that does not fit the context ends
  // at once with an error event.
  void admit(Job job);
  // Ends running sequences as cancelled: all of them, or those whose sink was cancelled.
  void cancel(bool all);
  // Computes one step; returns the tokens it computed (0 when no sequence runs).
  int64_t step();
  // Tells the scheduler that slot 0 holds `tokens`, computed by the caller (owl logits) under the
  // adapters whose key is `adapter_key` ("" for the base model; model::adapter_key).
  void assume_cached(std::vector<int32_t> tokens, std::string adapter_key = {});
  void fill_gauges(Gauges& g) const;
  int64_t n_ctx() const { return ctx_.kv.n_ctx(); }

 private:
  struct Slot;

  int64_t build_batch();
  void advance(Slot& slot, const float* logits);
  void finish(Slot& slot, FinishReason reason);
  void fail_batch(const std::string& message);
  // Counts `set` among the step's adapter sets.
  void note_adapters(const model::AdapterSet* set);

  const model::Model& model_;
  const tokenizer::Tokenizer& tokenizer_;
  model::Context& ctx_;
  int64_t step_tokens_;
  Observer* observer_;
  Observer no_observer_;
  std::vector<std::unique_ptr<Slot>> slots_;
  model::Batch batch_;
  // The slot of each logits row, in order, and the prompt position it scores (-1: the row the
  // sequence samples its next token from).
  struct Row {
    Slot* slot;
    int64_t prompt_pos;
  };
  std::vector<float> logits_;      // [rows][n_vocab]
  std::vector<Row> batch_rows_;
  std::vector<int32_t> order_;     // scratch for prompt log-probabilities
  std::vector<const model::AdapterSet*> step_adapters_;  // the different adapter sets of the step's sequences
  uint64_t admissions_ = 0;
  StepCost step_cost_;
};

}  // namespace owl::engine
