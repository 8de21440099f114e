// The backward pass, layer by layer in reverse, with the same shapes as forward.cpp
// ([rows][columns], rows are the step's tokens). Residual stream: x_mid = x + post(attn),
// x_out = x_mid + post(ffn), so dL/dx accumulates the norms' input gradients in place.
#include "train/backward.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "gguf/tensor_type.h"
#include "quant/quant.h"

namespace owl::train {

using core::make_error;
using model::LinearKind;
using model::WeightId;

namespace {

// fn(i0, i1) over [0, n) in tasks of at least `grain` items, on the pool; inline when the n items
// of `item_work` multiply-adds each would not pay for the hand-off (a tiny model's ops).
template <typename F>
void parallel(core::ThreadPool& pool, int64_t n, int64_t grain, int64_t item_work, F&& fn) {
  constexpr int64_t kInlineWork = int64_t{1} << 16;
  if (n <= 0) return;
  const int64_t n_threads = pool.n_threads();
  int64_t per = std::max<int64_t>(grain, (n + 4 * n_threads - 1) / (4 * n_threads));
  if (n_threads == 1 || n <= grain || n * item_work < kInlineWork) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t n_tasks = (n + per - 1) / per;
  pool.parallel_for(n_tasks, [&](int64_t t, int) { fn(t * per, std::min(n, (t + 1) * per)); });
}

}  // namespace

namespace ops {

void rms_norm_backward(const float* x, const float* w, const float* dy, float* dx, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double r = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  double gx = 0;
  for (int64_t i = 0; i < n; ++i) gx += static_cast<double>(dy[i]) * (w ? w[i] : 1.0f) * x[i];
  const double c = r * r * r * gx / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    dx[i] += static_cast<float>(r * dy[i] * (w ? w[i] : 1.0f) - c * x[i]);
  }
}

void swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g[i]));
    const float silu = g[i] * s;
    const float d = dy[i];  // dy may be du
    du[i] = d * silu;
    dg[i] = d * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

void geglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  constexpr float kA = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    const float t = std::tanh(kSqrt2OverPi * x * (1.0f + kA * x * x));
    const float gelu = 0.5f * x * (1.0f + t);
    const float dgelu = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kA * x * x);
    const float d = dy[i];  // dy may be du
    du[i] = d * gelu;
    dg[i] = d * u[i] * dgelu;
  }
}

void linear_input_backward(const kernels::Kernels& k, core::ThreadPool& pool, const model::Weight& w, const float* dy,
                           int64_t dy_stride, int64_t n_rows, float* dx, int64_t dx_stride) {
  constexpr int64_t kTileRows = 16;   // weight rows dequantized at a time
  constexpr int64_t kChunk = 256;     // columns of dx a task owns (a multiple of every block size)
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const int64_t chunk = n_in % kChunk == 0 && n_in > kChunk ? kChunk : n_in;
  const int64_t n_col = n_in / chunk;
  const int64_t n_threads = pool.n_threads();
  // Enough tasks for every thread; row blocks of at least 16 keep re-dequantizing cheap.
  const int64_t want_row_blocks = std::max<int64_t>(1, (4 * n_threads + n_col - 1) / n_col);
  const int64_t rows_per = std::max<int64_t>(16, (n_rows + want_row_blocks - 1) / want_row_blocks);
  const int64_t n_row_blocks = (n_rows + rows_per - 1) / rows_per;
  const bool f32 = w.type == gguf::TensorType::F32;
  const kernels::WidenRowFn widen = w.type == gguf::TensorType::F16    ? k.widen_f16
                                    : w.type == gguf::TensorType::BF16 ? k.widen_bf16
                                                                       : nullptr;
  const int64_t row_bytes = gguf::row_bytes(w.type, n_in);
  const int64_t col_bytes = gguf::row_bytes(w.type, chunk);
  const auto* base = static_cast<const uint8_t*>(w.data);
  auto task = [&](int64_t t) {
    const int64_t c = t % n_col, rb = t / n_col;
    const int64_t r0 = rb * rows_per, r1 = std::min(n_rows, r0 + rows_per);
    std::vector<float> tile(f32 ? 0 : static_cast<size_t>(kTileRows * chunk));
    for (int64_t j0 = 0; j0 < n_out; j0 += kTileRows) {
      const int64_t jn = std::min(kTileRows, n_out - j0);
      const float* rows = nullptr;  // jn rows of `chunk` columns, `stride` floats apart
      int64_t stride = chunk;
      if (f32) {
        rows = reinterpret_cast<const float*>(base + j0 * row_bytes + c * col_bytes);
        stride = n_in;
      } else {
        for (int64_t j = 0; j < jn; ++j) {
          const uint8_t* src = base + (j0 + j) * row_bytes + c * col_bytes;
          float* dst = tile.data() + j * chunk;
          if (widen != nullptr) {
            widen(src, dst, chunk);
          } else {
            quant::dequantize_row(w.type, src, dst, chunk);
          }
        }
        rows = tile.data();
      }
      for (int64_t r = r0; r < r1; ++r) {
        k.axpy_rows(dx + r * dx_stride + c * chunk, chunk, dy + r * dy_stride + j0, rows, stride, jn);
      }
    }
  };
  const int64_t n_tasks = n_col * n_row_blocks;
  if (n_tasks == 1 || n_threads == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) task(t);
  } else {
    pool.parallel_for(n_tasks, [&](int64_t t, int) { task(t); });
  }
}

}  // namespace ops

namespace {

// Gradients of one LoRA pair y += s B (A x) given dy: dA, dB accumulate; dx += s A^T B^T dy.
// With u = A x and du = s B^T dy (per token, r values each):
//   dB[j] += s Σ_t dy[t][j] u[t],  dA[k] += Σ_t du[t][k] x[t],  dx[t] += Σ_k du[t][k] A[k].
// Each is axpy_rows over rows that lie in memory as they are, after small transposes (scratch
// holds A^T, then du^T; each task transposes its own columns of dy). With dropout (`drop` set,
// the pair's weight `id`) the pair saw x̃ = mask ⊙ x, built in `dropped`: A's gradient takes x̃
// and dx the mask.
void lora_backward(const kernels::Kernels& kern, core::ThreadPool& pool, const model::LoraPair& p, float s,
                   const float* x, int64_t x_stride, const float* dy, int64_t dy_stride, int64_t n, float* dx,
                   int64_t dx_stride, float* dA, float* dB, float* u, float* du, std::vector<float>& scratch,
                   const model::LoraDropout* drop, model::WeightId id, std::vector<float>& dropped) {
  const int64_t r = p.rank, n_in = p.n_in, n_out = p.n_out;
  if (drop != nullptr) {
    dropped.resize(static_cast<size_t>(n * n_in));
    parallel(pool, n, 8, n_in, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) drop->apply(drop->row_key(t, id), x + t * x_stride, dropped.data() + t * n_in, n_in);
    });
    x = dropped.data();
    x_stride = n_in;
  }
  scratch.resize(static_cast<size_t>(std::max(r * n_in, n * r)));
  float* at = scratch.data();  // A^T [n_in][r]
  for (int64_t k = 0; k < r; ++k) {
    for (int64_t i = 0; i < n_in; ++i) at[i * r + k] = p.a[k * n_in + i];
  }
  parallel(pool, n, 8, r * (n_in + n_out), [&](int64_t t0, int64_t t1) {  // u[t] = A x[t]; du[t] = s B^T dy[t]
    for (int64_t t = t0; t < t1; ++t) {
      float* ut = u + t * r;
      float* dut = du + t * r;
      std::fill_n(ut, r, 0.0f);
      std::fill_n(dut, r, 0.0f);
      kern.axpy_rows(ut, r, x + t * x_stride, at, r, n_in);
      kern.axpy_rows(dut, r, dy + t * dy_stride, p.b, r, n_out);
      for (int64_t k = 0; k < r; ++k) dut[k] *= s;
    }
  });
  parallel(pool, n_out, 16, 2 * n * r, [&](int64_t j0, int64_t j1) {
    constexpr int64_t kCols = 32;  // s dy^T of kCols columns at a time [kCols][n]
    std::vector<float> dyt(static_cast<size_t>(std::min(kCols, j1 - j0) * n));
    for (int64_t c0 = j0; c0 < j1; c0 += kCols) {
      const int64_t c1 = std::min(j1, c0 + kCols);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t j = c0; j < c1; ++j) dyt[static_cast<size_t>((j - c0) * n + t)] = s * dy[t * dy_stride + j];
      }
      for (int64_t j = c0; j < c1; ++j) kern.axpy_rows(dB + j * r, r, dyt.data() + (j - c0) * n, u, r, n);
    }
  });
  float* dut = scratch.data();  // du^T [r][n]
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t k = 0; k < r; ++k) dut[k * n + t] = du[t * r + k];
  }
  parallel(pool, n_in, 64, n * r, [&](int64_t i0, int64_t i1) {
    for (int64_t k = 0; k < r; ++k) kern.axpy_rows(dA + k * n_in + i0, i1 - i0, dut + k * n, x + i0, x_stride, n);
  });
  parallel(pool, n, 8, n_in * r, [&](int64_t t0, int64_t t1) {
    if (drop == nullptr) {
      for (int64_t t = t0; t < t1; ++t) kern.axpy_rows(dx + t * dx_stride, n_in, du + t * r, p.a, n_in, r);
      return;
    }
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t t = t0; t < t1; ++t) {
      std::fill(row.begin(), row.end(), 0.0f);
      kern.axpy_rows(row.data(), n_in, du + t * r, p.a, n_in, r);
      const uint64_t key = drop->row_key(t, id);
      for (int64_t i = 0; i < n_in; ++i) dx[t * dx_stride + i] += row[static_cast<size_t>(i)] * drop->factor(key, i);
    }
  });
}

}  // namespace

Backward::Backward(const model::Model& model, int64_t n_batch) : model_(model), n_batch_(n_batch) {
  const model::ModelConfig& c = model.config;
  const auto n = static_cast<size_t>(n_batch);
  dx_.resize(n * static_cast<size_t>(c.n_embd));
  if (c.post_norms) dmid_.resize(n * static_cast<size_t>(c.n_embd));
}

double output_loss_and_gradient(const model::ModelConfig& c, float* logits, int32_t target, float weight) {
  const int64_t n_vocab = c.n_vocab;
  float max = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_z = std::log(sum) + max;
  const double loss = log_z - logits[target];
  const float cap = c.final_softcap;
  for (int64_t i = 0; i < n_vocab; ++i) {
    const float l = logits[i];
    float d = static_cast<float>(std::exp(static_cast<double>(l) - log_z) * weight);
    if (i == target) d -= weight;
    // logits = cap tanh(z / cap): dz = dlogits (1 - (logits / cap)^2)
    logits[i] = cap > 0.0f ? d * (1.0f - (l / cap) * (l / cap)) : d;
  }
  return loss;
}

core::Result<double> Backward::output_loss(model::Context& ctx, const float* hidden, std::span<const int32_t> targets,
                                           float weight, float* d_hidden) {
  const model::ModelConfig& c = model_.config;
  const auto n = static_cast<int64_t>(targets.size());
  logits_.resize(static_cast<size_t>(std::min(n, kOutputRows) * c.n_vocab));
  double loss = 0;
  for (int64_t r0 = 0; r0 < n; r0 += kOutputRows) {
    const int64_t m = std::min(kOutputRows, n - r0);
    OWL_TRY(model::output_logits(model_, ctx, hidden + r0 * c.n_embd, m, logits_.data()));
    if (d_hidden != nullptr) std::fill_n(d_hidden + r0 * c.n_embd, m * c.n_embd, 0.0f);  // hidden's rows are read
    for (int64_t i = 0; i < m; ++i) {  // the logits become dL/dz in place
      loss += output_loss_and_gradient(c, logits_.data() + i * c.n_vocab, targets[static_cast<size_t>(r0 + i)], weight);
    }
    if (d_hidden != nullptr) {
      ops::linear_input_backward(ctx.kernels, ctx.pool, model_.weights.output, logits_.data(), c.n_vocab, m,
                                 d_hidden + r0 * c.n_embd, c.n_embd);
    }
  }
  return loss;
}

core::Status Backward::run(const model::Batch& batch, const model::Tape& tape, model::Context& ctx,
                           const TrainableLora& lora, const float* d_hidden, std::vector<std::vector<float>>& grads) {
  const model::Model& model = model_;
  const model::ModelConfig& c = model.config;
  const int64_t n = batch.size();
  if (n > n_batch_ || tape.n_tokens != n || tape.layers.size() != static_cast<size_t>(c.n_layer)) {
    return make_error("backward: the tape holds {} tokens, the batch {} (at most {})", tape.n_tokens, n, n_batch_);
  }
  for (int64_t t = 0; t < n; ++t) {
    const bool first = t == 0 || batch.seq[t] != batch.seq[t - 1];
    if (batch.pos[t] != (first ? 0 : batch.pos[t - 1] + 1)) {
      return make_error("backward: row {} of sequence {} is at position {}; sequences must be whole, from position 0",
                        t, batch.seq[t], batch.pos[t]);
    }
  }
  if (grads.size() != lora.adapter->storage.size()) return make_error("backward: gradients not shaped as the adapter");
  core::ThreadPool& pool = ctx.pool;
  const float s = lora.scale();
  // The batch's dropout (the forward's mask, drawn again from the same keys).
  const model::LoraDropout* dropout = nullptr;
  if (!batch.adapters.empty() && batch.adapters[0] != nullptr && batch.adapters[0]->dropout != nullptr &&
      batch.adapters[0]->dropout->p > 0.0f) {
    dropout = batch.adapters[0]->dropout;
  }
  const int64_t n_embd = c.n_embd, n_q = c.n_embd_q(), n_kv = c.n_embd_kv(), width = n_q + 2 * n_kv, n_ff = c.n_ff;
  u_.resize(static_cast<size_t>(n * lora.rank));
  du_.resize(static_cast<size_t>(n * lora.rank));

  std::vector<int> slot_of(static_cast<size_t>(c.n_layer * static_cast<int64_t>(LinearKind::kCount)), -1);
  for (size_t i = 0; i < lora.slots.size(); ++i) {
    const WeightId id = lora.slots[i].id;
    slot_of[static_cast<size_t>(id.layer) * static_cast<size_t>(LinearKind::kCount) + static_cast<size_t>(id.kind)] =
        static_cast<int>(i);
  }
  // dx += dy W (+ the LoRA pair's part, whose gradients accumulate) for the weight `id`.
  auto linear = [&](const model::Weight& w, WeightId id, const float* x, int64_t x_stride, const float* dy,
                    int64_t dy_stride, float* dx, int64_t dx_stride) {
    ops::linear_input_backward(ctx.kernels, pool, w, dy, dy_stride, n, dx, dx_stride);
    const int slot = slot_of[static_cast<size_t>(id.layer) * static_cast<size_t>(LinearKind::kCount) +
                             static_cast<size_t>(id.kind)];
    if (slot < 0) return;
    const LoraSlot& ls = lora.slots[static_cast<size_t>(slot)];
    const model::LoraPair* pair = lora.adapter->find(id);
    lora_backward(ctx.kernels, pool, *pair, s, x, x_stride, dy, dy_stride, n, dx, dx_stride, grads[ls.a].data(),
                  grads[ls.b].data(), u_.data(), du_.data(), lora_scratch_, dropout, id, dropped_);
  };
  auto rms_back = [&](const float* x, const model::Weight& w, const float* dy, float* dx) {
    parallel(pool, n, 8, 4 * n_embd, [&](int64_t r0, int64_t r1) {
      for (int64_t t = r0; t < r1; ++t) {
        ops::rms_norm_backward(x + t * n_embd, w.f32(), dy + t * n_embd, dx + t * n_embd, n_embd, c.norm_eps);
      }
    });
  };

  // Output: the final norm of the rows that had output.
  float* dx = dx_.data();
  std::fill_n(dx, n * n_embd, 0.0f);
  for (int64_t t = 0, i = 0; t < n; ++t) {
    if (!batch.logits[static_cast<size_t>(t)]) continue;
    ops::rms_norm_backward(tape.x_final.data() + t * n_embd, model.weights.output_norm.f32(), d_hidden + i * n_embd,
                           dx + t * n_embd, n_embd, c.norm_eps);
    ++i;
  }

  std::vector<int32_t> neg_pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) neg_pos[static_cast<size_t>(t)] = -batch.pos[static_cast<size_t>(t)];

  for (int64_t il = c.n_layer - 1; il >= 0; --il) {
    const model::LayerWeights& l = model.weights.layers[static_cast<size_t>(il)];
    if (tape.inputs_only) OWL_TRY(model::recompute_layer(model, batch, ctx, tape, il, recomputed_));
    const model::LayerTape& tp = tape.inputs_only ? recomputed_ : tape.layers[static_cast<size_t>(il)];
    const std::vector<float>& x_in = tape.layers[static_cast<size_t>(il)].x;
    const auto id = [il](LinearKind kind) { return WeightId{static_cast<int32_t>(il), kind}; };
    float* mid = ctx.x.data();  // forward's scratch, free until the next layer is recomputed
    float* dcur = ctx.cur.data();

    // x_mid = x + post(attn_out), the input of ffn_norm.
    if (c.post_norms) {
      for (int64_t t = 0; t < n; ++t) {
        ctx.kernels.rms_norm(tp.attn_out.data() + t * n_embd, l.post_attention_norm.f32(), mid + t * n_embd, n_embd,
                             c.norm_eps);
      }
      for (int64_t i = 0; i < n * n_embd; ++i) mid[i] += x_in[static_cast<size_t>(i)];
    } else {
      for (int64_t i = 0; i < n * n_embd; ++i) mid[i] = x_in[static_cast<size_t>(i)] + tp.attn_out[static_cast<size_t>(i)];
    }

    // ---- FFN ----
    const float* d_ffn_out = dx;
    if (c.post_norms) {
      std::fill_n(dmid_.data(), n * n_embd, 0.0f);
      rms_back(tp.ffn_out.data(), l.post_ffw_norm, dx, dmid_.data());
      d_ffn_out = dmid_.data();
    }
    // dgu [n][2 n_ff] is forward's scratch (free until the next layer is recomputed); dact is
    // first written into its up half, which the activation's backward then overwrites in place.
    float* dgu = ctx.ffn.data();
    float* dact = dgu + n_ff;
    for (int64_t t = 0; t < n; ++t) std::fill_n(dact + t * 2 * n_ff, n_ff, 0.0f);
    linear(l.ffn_down, id(LinearKind::kFfnDown), tp.act.data(), n_ff, d_ffn_out, n_embd, dact, 2 * n_ff);
    parallel(pool, n, 4, 8 * n_ff, [&](int64_t r0, int64_t r1) {
      for (int64_t t = r0; t < r1; ++t) {
        const float* g = tp.gate_up.data() + t * 2 * n_ff;
        float* d = dgu + t * 2 * n_ff;
        if (c.activation == model::Activation::kSilu) {
          ops::swiglu_backward(g, g + n_ff, d + n_ff, d, d + n_ff, n_ff);
        } else {
          ops::geglu_backward(g, g + n_ff, d + n_ff, d, d + n_ff, n_ff);
        }
      }
    });
    std::fill_n(dcur, n * n_embd, 0.0f);
    if (l.ffn_gate.present()) {
      linear(l.ffn_gate, id(LinearKind::kFfnGate), tp.ffn_in.data(), n_embd, dgu, 2 * n_ff, dcur, n_embd);
      linear(l.ffn_up, id(LinearKind::kFfnUp), tp.ffn_in.data(), n_embd, dgu + n_ff, 2 * n_ff, dcur, n_embd);
    } else {
      linear(l.ffn_up, id(LinearKind::kFfnUp), tp.ffn_in.data(), n_embd, dgu, 2 * n_ff, dcur, n_embd);
    }
    rms_back(mid, l.ffn_norm, dcur, dx);  // dx is now dL/dx_mid

    // ---- attention ----
    const float* d_attn_out = dx;
    if (c.post_norms) {
      std::fill_n(dmid_.data(), n * n_embd, 0.0f);
      rms_back(tp.attn_out.data(), l.post_attention_norm, dx, dmid_.data());
      d_attn_out = dmid_.data();
    }
    float* dattn = ctx.attn.data();  // forward's scratch, as dgu
    std::fill_n(dattn, n * n_q, 0.0f);
    linear(l.attn_output, id(LinearKind::kAttnOutput), tp.attn.data(), n_q, d_attn_out, n_embd, dattn, n_q);

    // Attention per sequence, its scores recomputed from the recorded q, k, v.
    float* dqkv = ctx.qkv.data();
    std::fill_n(dqkv, n * width, 0.0f);
    for (int64_t b = 0; b < n;) {
      int64_t e = b + 1;
      while (e < n && batch.seq[static_cast<size_t>(e)] == batch.seq[static_cast<size_t>(b)]) ++e;
      const kernels::SelfAttentionArgs a = model::layer_self_attention(c, il, tp.qkv.data() + b * width, e - b);
      kernels::self_attention_backward(ctx.kernels, pool, a, dattn + b * n_q, n_q, dqkv + b * width);
      b = e;
    }

    // q was scaled after RoPE; RoPE's backward is the rotation by -theta; then the q/k norms.
    const kernels::RopeParams rope = model::layer_rope(model, il);
    parallel(pool, n, 8, 2 * width, [&](int64_t t0, int64_t t1) {
      if (c.q_scale != 1.0f) {
        for (int64_t t = t0; t < t1; ++t) {
          for (int64_t i = 0; i < n_q; ++i) dqkv[t * width + i] *= c.q_scale;
        }
      }
      kernels::RopeParams r = rope;
      r.n_head = static_cast<int>(c.n_head);
      ctx.kernels.rope(r, dqkv + t0 * width, t1 - t0, neg_pos.data() + t0);
      r.n_head = static_cast<int>(c.n_head_kv);
      ctx.kernels.rope(r, dqkv + t0 * width + n_q, t1 - t0, neg_pos.data() + t0);
      if (c.qk_norm) {
        const int64_t hd = c.head_dim;
        std::vector<float> d(static_cast<size_t>(hd));
        for (int64_t t = t0; t < t1; ++t) {
          for (int64_t h = 0; h < c.n_head + c.n_head_kv; ++h) {
            const bool is_q = h < c.n_head;
            float* row = dqkv + t * width + h * hd;  // q heads then k heads, contiguous
            const float* raw = tp.qk_raw.data() + t * (n_q + n_kv) + h * hd;
            std::copy_n(row, hd, d.data());
            std::fill_n(row, hd, 0.0f);
            ops::rms_norm_backward(raw, (is_q ? l.attn_q_norm : l.attn_k_norm).f32(), d.data(), row, hd, c.norm_eps);
          }
        }
      }
    });

    std::fill_n(dcur, n * n_embd, 0.0f);
    const float* ain = tp.attn_in.data();
    if (l.attn_qkv.present()) {
      linear(l.attn_qkv, id(LinearKind::kAttnQkv), ain, n_embd, dqkv, width, dcur, n_embd);
    } else {
      linear(l.attn_q, id(LinearKind::kAttnQ), ain, n_embd, dqkv, width, dcur, n_embd);
      linear(l.attn_k, id(LinearKind::kAttnK), ain, n_embd, dqkv + n_q, width, dcur, n_embd);
      linear(l.attn_v, id(LinearKind::kAttnV), ain, n_embd, dqkv + n_q + n_kv, width, dcur, n_embd);
    }
    rms_back(x_in.data(), l.attn_norm, dcur, dx);  // dx is now dL/dx of the layer's input
  }
  return {};
}

}  // namespace owl::train
