// The backward pass of forward() for LoRA training: from dL/dlogits of the rows that had logits
// back through every layer (final norm and softcap, gated FFN, attention with GQA, RoPE, q/k
// norms, post norms), using what forward()'s tape recorded. The base weights stay frozen in
// their file's format: gradients flow through them (dX = dY W, W dequantized a tile at a time)
// and accumulate only into the trained adapter's A and B.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/result.h"
#include "model/forward.h"
#include "model/model.h"
#include "train/lora.h"

namespace owl::train {

// The scalar building blocks, each checked against finite differences in the tests.
namespace ops {
// y = x / sqrt(mean(x^2) + eps) * w (w may be null): dx += dL/dx given dy.
void rms_norm_backward(const float* x, const float* w, const float* dy, float* dx, int64_t n, float eps);
// y = silu(g) * u: dg, du (overwritten) given dy (which may be du).
void swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n);
// y = gelu_tanh(g) * u: dg, du (overwritten) given dy (which may be du).
void geglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n);
// dx[r][i] += Σ_j dy[r][j] W[j][i] for W [n_out][n_in] in any weight format (its rows
// dequantized a tile at a time, then k.axpy_rows); runs on the pool.
void linear_input_backward(const kernels::Kernels& k, core::ThreadPool& pool, const model::Weight& w, const float* dy,
                           int64_t dy_stride, int64_t n_rows, float* dx, int64_t dx_stride);
}  // namespace ops

// Scratch sized for one model and step size, reused across steps. run() also borrows the
// context's forward scratch (x, cur, qkv, ffn) between the layers it recomputes.
class Backward {
 public:
  Backward(const model::Model& model, int64_t n_batch);

  // The summed cross-entropy of `targets`, one for each row of `hidden` (forward()'s
  // Output::kHidden rows), each weighted by `weight`. With `d_hidden`, writes dL/dhidden
  // [rows][n_embd] there (it may be `hidden`): what run() takes. The logits are made kOutputRows rows at a time, so a
  // step never holds [rows][n_vocab].
  core::Result<double> output_loss(model::Context& ctx, const float* hidden, std::span<const int32_t> targets,
                                   float weight, float* d_hidden);
  static constexpr int64_t kOutputRows = 32;

  // Adds to `grads` (shaped as lora.adapter->storage) the gradient of Σ d_hidden · hidden over the
  // rows of `batch` that asked for output, for the step `tape` recorded (ctx.tape during
  // forward(model, batch, ctx, hidden, Output::kHidden)). A tape of layer inputs only has each
  // layer recomputed from its input on the way back. Every sequence of the batch must be whole:
  // its rows contiguous, at positions 0, 1, 2... Every row runs with the trained adapter alone
  // (and the first row's AdapterSet::dropout, when set, is that of every row).
  core::Status run(const model::Batch& batch, const model::Tape& tape, model::Context& ctx, const TrainableLora& lora,
                   const float* d_hidden, std::vector<std::vector<float>>& grads);

 private:
  const model::Model& model_;
  int64_t n_batch_;
  std::vector<float> dx_, dmid_, u_, du_, lora_scratch_, logits_, dropped_;
  model::LayerTape recomputed_;
};

// One row of logits (softcap applied when the model has one): returns -log p(target) and
// overwrites the row with weight · dL/dz, z the output matmul's result before the softcap.
double output_loss_and_gradient(const model::ModelConfig& c, float* logits, int32_t target, float weight);

}  // namespace owl::train
