// The training loop: examples packed into micro-batches of whole sequences, one forward (with
// the tape) and one backward per micro-batch, gradients accumulated over an optimizer step and
// normalized by its target tokens, clipped, AdamW with warm-up and a schedule; validation loss,
// early stopping, atomic checkpoints that resume bit-identically.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "model/model.h"
#include "train/data.h"
#include "train/lora.h"

namespace owl::train {

enum class Schedule { kCosine, kLinear, kConstant };

// Whether the backward pass keeps every layer's activations from the forward (fast) or only each
// layer's input, recomputing the rest of a layer when the backward pass reaches it (about one more
// forward per step; the kept activations shrink 4-20 times). The gradients are the same bits.
enum class Recompute { kAuto, kOn, kOff };
inline constexpr int64_t kRecomputeAboveBytes = int64_t{256} << 20;  // kAuto: on when the full record would exceed this

struct TrainOptions {
  int64_t epochs = 1;          // used when steps is 0
  int64_t steps = 0;           // optimizer steps; 0: epochs over the training set
  float lr = 2e-4f;
  int64_t batch = 4;           // examples per micro-batch (one forward and backward)
  int64_t grad_accum = 1;      // micro-batches per optimizer step
  Schedule schedule = Schedule::kCosine;
  int64_t warmup = 0;          // steps of linear warm-up from 0
  float weight_decay = 0.0f;
  float clip = 1.0f;           // global gradient norm; 0: no clipping
  float dropout = 0.0f;        // LoRA dropout on each pair's input (model::LoraDropout), 0 <= p < 1
  uint64_t seed = 42;
  int64_t eval_every = 0;      // steps between validation losses; 0: at the end only
  int64_t early_stop = 0;      // stop after this many evaluations without improvement; 0: never
  int64_t checkpoint_every = 0;
  std::string checkpoint;      // path of the checkpoint file (written when checkpoint_every > 0)
  int n_threads = 0;
  Recompute recompute = Recompute::kAuto;
};

// What the backward pass will keep of a micro-batch's activations.
struct ActivationPlan {
  bool recompute = false;
  int64_t full_bytes = 0;    // every layer's activations of the largest micro-batch
  int64_t inputs_bytes = 0;  // the layer inputs plus one layer's activations, when recomputing
};
ActivationPlan plan_activations(const model::Model& model, const TrainOptions& options, const Dataset& train,
                                const Dataset& val);

// What one optimizer step reports.
struct StepReport {
  int64_t step = 0, total = 0;
  double loss = 0;               // mean over the step's target tokens
  std::optional<double> val_loss;
  double grad_norm = 0;
  float lr = 0;
  int64_t tokens = 0;            // tokens the step ran (forward and backward)
  double seconds = 0;            // the step's wall time
  double elapsed = 0;            // since training started (this run)
};

struct TrainResult {
  int64_t steps = 0;             // steps done in total (counting those before a resume)
  double final_loss = 0;
  std::optional<double> best_val_loss;
  int64_t best_step = 0;         // the step whose adapter is kept (the best validation loss, else the last)
  bool stopped_early = false;
  bool interrupted = false;
  double tokens_per_second = 0;
};

// The learning rate at `step` (0-based) of `total`.
float learning_rate(const TrainOptions& o, int64_t step, int64_t total);

// Trains `lora` in place on `train` (validation on `val` when it is not empty). On return the
// adapter holds the kept weights (the best validation loss, else the last step's). `resume`:
// a checkpoint written by an earlier run with the same options and data. `stop` is polled between
// steps (Ctrl-C): training ends there, keeping what it has.
core::Result<TrainResult> train(const model::Model& model, TrainableLora& lora, const Dataset& train,
                                const Dataset& val, const TrainOptions& options, const std::string& resume,
                                const std::function<void(const StepReport&)>& on_step,
                                const std::atomic<bool>* stop = nullptr);

// Mean loss per target token of `data` under the model with `lora` (forward only).
core::Result<double> evaluate_loss(const model::Model& model, const TrainableLora& lora, const Dataset& data,
                                   int64_t batch, int n_threads);

}  // namespace owl::train
