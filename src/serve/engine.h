// The engine: one thread that owns the model's Context and runs the scheduler loop of
// continuous batching. Each step admits waiting choices into free sequence slots, builds one
// Batch of every running sequence's next token plus prompt chunks of the sequences still
// prefilling (a token budget per step, so a long prompt does not stall running streams; short
// prompts in as many steps as keeps their summed time to first token least, prompts_for_step),
// runs forward() once, samples each sequence that asked for logits, and pushes the text to the
// choice's RequestStream. There are no prefill/decode phases: a sequence has computed some of
// its tokens and the step computes more.
//
// Prefix reuse: every slot keeps the tokens its KV cache holds, after it ends too. A new choice
// takes the free slot whose tokens share the longest prefix with its prompt, or copies that
// prefix from a busy slot when one shares more, and computes only the rest.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/forward.h"
#include "sample/generate.h"
#include "sample/sampler.h"
#include "serve/metrics.h"
#include "serve/stream.h"
#include "tokenizer/tokenizer.h"

namespace owl::serve {

// Steps of this many tokens keep the matmuls efficient, while a burst of short prompts gets its
// first tokens a few prompts at a time rather than all after one long step.
inline constexpr int64_t kDefaultStepTokens = 128;
inline constexpr int64_t kMaxStepTokens = 4096;

struct EngineOptions {
  int n_parallel = 4;         // sequence slots
  int64_t n_ctx = 0;          // positions per slot; 0: the model's, at most 4096
  int n_threads = 0;          // 0: all cores
  // Tokens one step computes (decode tokens first, then prompt chunks); a prompt that would end
  // within step_tokens / 4 past it is finished in the same step. 0: kDefaultStepTokens, or
  // n_parallel if that is more.
  int64_t step_tokens = 0;
  int max_queue = 64;         // choices waiting for a slot before submit() refuses
};

// One choice to generate.
struct ChoiceParams {
  std::vector<int32_t> prompt;
  sample::SamplingParams sampling;
  std::vector<std::string> stop;
  int64_t max_tokens = -1;  // < 0: until the context is full
  bool ignore_eos = false;
};

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

enum class SubmitResult { kAccepted, kQueueFull, kStopping };

// Threading: submit(), gauges(), n_ctx() and stop() may be called from any thread; everything
// else runs on the engine thread, which owns the Context, the slots and the samplers.
class Engine {
 public:
  // `model`, `tokenizer` and `metrics` must outlive the engine.
  static core::Result<std::unique_ptr<Engine>> make(const model::Model& model, const tokenizer::Tokenizer& tokenizer,
                                                    Metrics& metrics, EngineOptions options);
  ~Engine();

  // Queues choices 0..n-1 of one request, all or none; their events go to `stream`.
  SubmitResult submit(std::vector<ChoiceParams> choices, std::shared_ptr<RequestStream> stream);
  // Refuses new work; when `cancel`, ends queued and running choices as cancelled at the next step.
  // Returns at once; the destructor joins the thread.
  void stop(bool cancel);
  // Waits until no choice is queued or running, up to `timeout`; true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);

  EngineGauges gauges() const;
  int64_t n_ctx() const { return ctx_->kv.n_ctx(); }
  const EngineOptions& options() const { return options_; }

 private:
  struct Pending {
    ChoiceParams params;
    std::shared_ptr<RequestStream> stream;
    int index = 0;
  };
  struct Slot;

  Engine(const model::Model& model, const tokenizer::Tokenizer& tokenizer, Metrics& metrics,
         std::unique_ptr<model::Context> ctx, const EngineOptions& options);
  void run();
  void step();
  void drop_cancelled();
  void admit();
  void start(Slot& slot, Pending pending);
  int64_t build_batch();
  void sample_outputs();
  void advance(Slot& slot, const float* logits);
  void finish(Slot& slot, sample::FinishReason reason);
  void fail_batch(const std::string& message);
  void publish_gauges();

  const model::Model& model_;
  const tokenizer::Tokenizer& tokenizer_;
  Metrics& metrics_;
  EngineOptions options_;
  std::unique_ptr<model::Context> ctx_;

  // Engine thread only.
  std::vector<std::unique_ptr<Slot>> slots_;
  model::Batch batch_;
  std::vector<float> logits_;      // [n_parallel][n_vocab]
  std::vector<Slot*> batch_slots_; // the slot of each logits row, in order
  uint64_t admissions_ = 0;
  StepCost step_cost_;

  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  bool cancel_all_ = false;
  int64_t running_ = 0;
  EngineGauges gauges_;

  std::thread thread_;
};

// Length of the common prefix of two token sequences.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

}  // namespace owl::serve
