// The generic transformer block (pre-norm, RoPE attention with GQA, gated FFN) with the
// per-architecture options of ModelConfig. Shapes are noted as [rows][columns].
#include "model/forward.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <initializer_list>
#include <span>

#include "quant/quant.h"

namespace owl::model {
namespace {

using core::make_error;
using Clock = std::chrono::steady_clock;

double ns_since(Clock::time_point start) { return std::chrono::duration<double, std::nano>(Clock::now() - start).count(); }

StepProfile::Part profile_part(WeightId id) {
  if (id.layer < 0) return StepProfile::Part::kOutput;
  switch (id.kind) {
    case LinearKind::kAttnOutput: return StepProfile::Part::kAttnOutput;
    case LinearKind::kFfnGate:
    case LinearKind::kFfnUp: return StepProfile::Part::kFfnGateUp;
    case LinearKind::kFfnDown: return StepProfile::Part::kFfnDown;
    default: return StepProfile::Part::kAttnQkv;
  }
}

// Row views of the step's activations, all [n_tokens][width] with the widths noted.
struct Step {
  const Model& model;
  Context& ctx;
  const int32_t* token;
  const int32_t* pos;
  const int32_t* seq;
  const AdapterSet* const* adapters;  // [n] per row, or null when no row has adapters
  int64_t n;  // tokens in this step
};

// fn(r0, r1) over row ranges covering [0, n_rows) of `row_floats` each: on the pool for a
// prefill's many rows (the row ops would otherwise run on one core between parallel matmuls),
// inline for a few or for small rows, whose work would not pay for the hand-off.
template <typename F>
void parallel_rows(Context& ctx, int64_t n_rows, int64_t row_floats, F&& fn) {
  constexpr int64_t kRowsPerTask = 4;
  constexpr int64_t kInlineFloats = int64_t{1} << 15;
  if (n_rows < 2 * kRowsPerTask || n_rows * row_floats < kInlineFloats || ctx.pool.n_threads() == 1) {
    fn(int64_t{0}, n_rows);
    return;
  }
  const int64_t n_tasks = (n_rows + kRowsPerTask - 1) / kRowsPerTask;
  ctx.pool.parallel_for(n_tasks, [&](int64_t t, int) { fn(t * kRowsPerTask, std::min(n_rows, (t + 1) * kRowsPerTask)); });
}

// A weight, its identity (for adapters) and where its output rows go.
struct Out {
  const Weight& w;
  float* y;
  WeightId id = {};
};

// y[r] += scale · B (A x[r]) for every adapter pair of the row's set (adapter.h), for each run of
// consecutive rows with the same set: U = X A^T (an f32 matmul), then per row y += Σ_k scale u_k
// B^T[k] (axpy_rows). A row's result does not depend on the rows around it.
void apply_lora(Context& ctx, const Out& o, const float* x, int64_t x_stride, int64_t y_stride, int64_t n_rows,
                const AdapterSet* const* row_adapters) {
  for (int64_t r0 = 0; r0 < n_rows;) {
    const AdapterSet* set = row_adapters[r0];
    int64_t r1 = r0 + 1;
    while (r1 < n_rows && row_adapters[r1] == set) ++r1;
    const int64_t n = r1 - r0;
    if (set == nullptr) {
      r0 = r1;
      continue;
    }
    for (const auto& [adapter, user_scale] : set->adapters) {
      const LoraPair* pair = adapter->find(o.id);
      if (pair == nullptr) continue;
      const float* xs = x + r0 * x_stride;
      int64_t xs_stride = x_stride;
      const LoraDropout* dropout = set->dropout;
      if (dropout != nullptr && dropout->p > 0.0f) {  // the key's row: the row of the step
        ctx.lora_x.resize(static_cast<size_t>(n * pair->n_in));
        parallel_rows(ctx, n, pair->n_in, [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            dropout->apply(dropout->row_key(r0 + t, o.id), xs + t * x_stride, ctx.lora_x.data() + t * pair->n_in,
                           pair->n_in);
          }
        });
        xs = ctx.lora_x.data();
        xs_stride = pair->n_in;
      }
      ctx.lora_u.resize(std::max(ctx.lora_u.size(), static_cast<size_t>(n * pair->rank)));
      ctx.lora_bt.resize(std::max(ctx.lora_bt.size(), static_cast<size_t>(pair->rank * pair->n_out)));
      // Small pairs (a tiny model's, a decode row's) run inline: the hand-off would cost more.
      constexpr int64_t kInlineMacs = int64_t{1} << 18;
      core::ThreadPool& pool = n * pair->n_in * pair->rank < kInlineMacs ? ctx.one_thread : ctx.pool;
      kernels::MatmulArgs a;
      a.w_type = gguf::TensorType::F32;
      a.n_rows = n;
      a.batch_invariant = ctx.options.batch_invariant;
      a.w = pair->a;
      a.x = xs;
      a.x_stride = xs_stride;
      a.y = ctx.lora_u.data();
      a.n_in = pair->n_in;
      a.n_out = pair->rank;
      kernels::matmul(ctx.kernels, pool, a);
      const int64_t r = pair->rank, n_out = pair->n_out;
      float* bt = ctx.lora_bt.data();  // B^T [rank][n_out]
      for (int64_t j = 0; j < n_out; ++j) {
        for (int64_t k = 0; k < r; ++k) bt[k * n_out + j] = pair->b[j * r + k];
      }
      const float scale = user_scale * adapter->alpha_scale;
      parallel_rows(ctx, n, n_out * r, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          float* ut = ctx.lora_u.data() + t * r;
          for (int64_t k = 0; k < r; ++k) ut[k] *= scale;
          ctx.kernels.axpy_rows(o.y + (r0 + t) * y_stride, n_out, ut, bt, n_out, r);  // y += Σ_k u_k B^T[k]
        }
      });
    }
    r0 = r1;
  }
}

// y = x W^T for each Out over the same x [n_rows][x_stride]; every y has row stride y_stride.
// Together they convert x once and, in prefill, run as one parallel job (kernels::matmul over
// a group). This is the one matmul on weights: the rows' LoRA adapters apply here and nowhere else.
void matmul(Context& ctx, std::initializer_list<Out> outs, const float* x, int64_t x_stride, int64_t y_stride,
            int64_t n_rows, const AdapterSet* const* row_adapters = nullptr) {
  std::array<kernels::MatmulArgs, kernels::kMaxMatmulGroup> args;
  size_t n = 0;
  for (const Out& o : outs) {
    if (ctx.observer) ctx.observer->observe(o.w, x, x_stride, n_rows);
    kernels::MatmulArgs& a = args.at(n++);
    a.w_type = o.w.type;
    // The packed copy where these kernels read it; batch-invariant sums stay on the GGUF rows,
    // whose decode and panel kernels sum alike.
    a.w_packed = o.w.packed != nullptr && !ctx.options.batch_invariant && kernels::reads_packed(ctx.kernels, o.w.type);
    a.w = a.w_packed ? o.w.packed : o.w.data;
    a.x = x;
    a.y = o.y;
    a.n_in = o.w.n_in;
    a.n_out = o.w.n_out;
    a.n_rows = n_rows;
    a.x_stride = x_stride;
    a.y_stride = y_stride;
    a.scratch = ctx.matmul_scratch.data();
    a.scratch_bytes = ctx.matmul_scratch.size();
    a.batch_invariant = ctx.options.batch_invariant;
  }
  const Clock::time_point start = ctx.profile != nullptr ? Clock::now() : Clock::time_point{};
  kernels::matmul(ctx.kernels, ctx.pool, std::span<const kernels::MatmulArgs>(args.data(), n));
  if (row_adapters != nullptr) {
    for (const Out& o : outs) apply_lora(ctx, o, x, x_stride, y_stride, n_rows, row_adapters);
  }
  if (ctx.profile != nullptr) {
    const double ns = ns_since(start);
    uint32_t types = 0;
    double bytes = 0, flops = 0;
    for (const Out& o : outs) {
      types |= uint32_t{1} << static_cast<uint32_t>(o.w.type);
      bytes += static_cast<double>(gguf::row_bytes(o.w.type, o.w.n_in) * o.w.n_out);
      flops += 2.0 * static_cast<double>(o.w.n_in * o.w.n_out * n_rows);
    }
    ctx.profile->add(profile_part(outs.begin()->id), types, ns, bytes, flops);
  }
}

void matmul(const Step& s, const Out& out, const float* x, int64_t x_stride, int64_t y_stride) {
  matmul(s.ctx, {out}, x, x_stride, y_stride, s.n, s.adapters);
}

// Copies rows [n][width] (stride `stride`) into a tape vector.
void record(std::vector<float>& to, const float* from, int64_t n, int64_t width, int64_t stride) {
  to.resize(static_cast<size_t>(n * width));
  for (int64_t r = 0; r < n; ++r) std::copy_n(from + r * stride, width, to.data() + r * width);
}

void rms_norm_rows(Context& ctx, const float* x, const Weight& w, float* y, int64_t n_rows, int64_t width,
                   int64_t stride, float eps) {
  parallel_rows(ctx, n_rows, width, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) ctx.kernels.rms_norm(x + r * stride, w.f32(), y + r * stride, width, eps);
  });
}

void add_bias(float* y, const Weight& b, int64_t n_rows, int64_t stride) {
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t i = 0; i < b.n_in; ++i) y[r * stride + i] += b.f32()[i];
  }
}

// Q, K, V of every token into ctx.qkv [n][n_q + 2 n_kv], RoPE applied, Q scaled.
void compute_qkv(const Step& s, const LayerWeights& l, int64_t il, LayerTape* tape) {
  const auto id = [il](LinearKind kind) { return WeightId{static_cast<int32_t>(il), kind}; };
  const ModelConfig& c = s.model.config;
  Context& ctx = s.ctx;
  const int64_t n_q = c.n_embd_q(), n_kv = c.n_embd_kv(), width = n_q + 2 * n_kv;
  float* q = ctx.qkv.data();
  float* k = q + n_q;
  float* v = k + n_kv;
  if (l.attn_qkv.present()) {
    matmul(s, Out{l.attn_qkv, q, id(LinearKind::kAttnQkv)}, ctx.cur.data(), c.n_embd, width);
  } else {
    matmul(ctx, {Out{l.attn_q, q, id(LinearKind::kAttnQ)}, Out{l.attn_k, k, id(LinearKind::kAttnK)},
                 Out{l.attn_v, v, id(LinearKind::kAttnV)}},
           ctx.cur.data(), c.n_embd, width, s.n, s.adapters);
  }
  if (c.qkv_bias) {
    add_bias(q, l.attn_q_bias, s.n, width);
    add_bias(k, l.attn_k_bias, s.n, width);
    add_bias(v, l.attn_v_bias, s.n, width);
  }
  const kernels::RopeParams rope = layer_rope(s.model, il);
  if (tape != nullptr && c.qk_norm) record(tape->qk_raw, q, s.n, n_q + n_kv, width);
  parallel_rows(ctx, s.n, width, [&](int64_t t0, int64_t t1) {
    if (c.qk_norm) {  // per head, before RoPE
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t h = 0; h < c.n_head; ++h) {
          float* row = q + t * width + h * c.head_dim;
          ctx.kernels.rms_norm(row, l.attn_q_norm.f32(), row, c.head_dim, c.norm_eps);
        }
        for (int64_t h = 0; h < c.n_head_kv; ++h) {
          float* row = k + t * width + h * c.head_dim;
          ctx.kernels.rms_norm(row, l.attn_k_norm.f32(), row, c.head_dim, c.norm_eps);
        }
      }
    }
    kernels::RopeParams r = rope;
    r.n_head = static_cast<int>(c.n_head);
    ctx.kernels.rope(r, q + t0 * width, t1 - t0, s.pos + t0);
    r.n_head = static_cast<int>(c.n_head_kv);
    ctx.kernels.rope(r, k + t0 * width, t1 - t0, s.pos + t0);
    if (c.q_scale != 1.0f) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t i = 0; i < n_q; ++i) q[t * width + i] *= c.q_scale;
      }
    }
  });
}

// Stores K/V (not with exact attention, which has no cache), then attends each run of consecutive tokens of one sequence over its slot.
void compute_attention(const Step& s, int64_t il) {
  const ModelConfig& c = s.model.config;
  Context& ctx = s.ctx;
  const int64_t n_q = c.n_embd_q(), n_kv = c.n_embd_kv(), width = n_q + 2 * n_kv;
  // quantize_f16 rounds as quant::f32_to_f16 (bit-exact, tested in tests/kernels).
  if (!ctx.options.exact_attention) parallel_rows(ctx, s.n, 2 * n_kv, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* k = ctx.qkv.data() + t * width + n_q;
      ctx.kernels.quantize_f16(k, ctx.kv.k(il, s.seq[t]) + s.pos[t] * n_kv, n_kv);
      ctx.kernels.quantize_f16(k + n_kv, ctx.kv.v(il, s.seq[t]) + s.pos[t] * n_kv, n_kv);
    }
  });
  for (int64_t begin = 0; begin < s.n;) {
    int64_t end = begin + 1;
    while (end < s.n && s.seq[end] == s.seq[begin]) ++end;
    if (ctx.options.exact_attention) {  // whole sequences (validate): row begin + t is position t
      const kernels::SelfAttentionArgs a = layer_self_attention(c, il, ctx.qkv.data() + begin * width, end - begin);
      kernels::self_attention(ctx.kernels, ctx.pool, a, ctx.attn.data() + begin * n_q, n_q);
      begin = end;
      continue;
    }
    int32_t max_pos = 0;
    for (int64_t t = begin; t < end; ++t) max_pos = std::max(max_pos, s.pos[t]);
    kernels::AttentionArgs a;
    a.q = ctx.qkv.data() + begin * width;
    a.k = ctx.kv.k(il, s.seq[begin]);
    a.v = ctx.kv.v(il, s.seq[begin]);
    a.out = ctx.attn.data() + begin * n_q;
    a.n_tokens = end - begin;
    a.n_kv = max_pos + 1;
    a.n_head = static_cast<int>(c.n_head);
    a.n_head_kv = static_cast<int>(c.n_head_kv);
    a.head_dim = static_cast<int>(c.head_dim);
    a.q_stride = width;
    a.kv_stride = n_kv;
    a.out_stride = n_q;
    a.q_pos = s.pos + begin;
    a.window = c.is_swa_layer(il) ? static_cast<int32_t>(c.sliding_window) : 0;
    a.scale = c.kq_scale;
    a.softcap = c.attn_softcap;
    a.q_f16 = true;  // as llama.cpp's CPU flash attention
    a.v_acc_f16 = true;
    kernels::attention(ctx.kernels, ctx.pool, a);
    begin = end;
  }
}

// x += y over [n_rows][width] rows.
void add_rows(Context& ctx, float* x, const float* y, int64_t n_rows, int64_t width) {
  parallel_rows(ctx, n_rows, width, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * width; i < r1 * width; ++i) x[i] += y[i];
  });
}

// `inputs`: records the layer's input x there (may be null); `tape`: records everything else.
void compute_layer(const Step& s, int64_t il, LayerTape* inputs, LayerTape* tape) {
  const ModelConfig& c = s.model.config;
  const LayerWeights& l = s.model.weights.layers[static_cast<size_t>(il)];
  Context& ctx = s.ctx;
  const int64_t n_embd = c.n_embd, n = s.n;
  const int64_t n_q = c.n_embd_q(), n_qkv = n_q + 2 * c.n_embd_kv();
  const auto id = [il](LinearKind kind) { return WeightId{static_cast<int32_t>(il), kind}; };
  float* x = ctx.x.data();
  float* cur = ctx.cur.data();

  if (inputs) record(inputs->x, x, n, n_embd, n_embd);
  rms_norm_rows(ctx, x, l.attn_norm, cur, n, n_embd, n_embd, c.norm_eps);
  if (tape) record(tape->attn_in, cur, n, n_embd, n_embd);
  compute_qkv(s, l, il, tape);
  if (ctx.profile != nullptr) {
    const Clock::time_point start = Clock::now();
    compute_attention(s, il);
    ctx.profile->add(StepProfile::Part::kAttention, 0, ns_since(start), 0, 0);
  } else {
    compute_attention(s, il);
  }
  if (tape) record(tape->qkv, ctx.qkv.data(), n, n_qkv, n_qkv), record(tape->attn, ctx.attn.data(), n, n_q, n_q);
  matmul(s, Out{l.attn_output, cur, id(LinearKind::kAttnOutput)}, ctx.attn.data(), n_q, n_embd);
  if (tape) record(tape->attn_out, cur, n, n_embd, n_embd);
  if (c.post_norms) rms_norm_rows(ctx, cur, l.post_attention_norm, cur, n, n_embd, n_embd, c.norm_eps);
  add_rows(ctx, x, cur, n, n_embd);

  // FFN: ctx.ffn [n][2 n_ff] holds gate | up; the activation overwrites gate.
  rms_norm_rows(ctx, x, l.ffn_norm, cur, n, n_embd, n_embd, c.norm_eps);
  if (tape) record(tape->ffn_in, cur, n, n_embd, n_embd);
  const int64_t n_ff = c.n_ff, width = 2 * n_ff;
  float* gate = ctx.ffn.data();
  if (l.ffn_gate.present()) {
    matmul(ctx, {Out{l.ffn_gate, gate, id(LinearKind::kFfnGate)}, Out{l.ffn_up, gate + n_ff, id(LinearKind::kFfnUp)}},
           cur, n_embd, width, n, s.adapters);
  } else {
    matmul(s, Out{l.ffn_up, gate, id(LinearKind::kFfnUp)}, cur, n_embd, width);
  }
  if (tape) record(tape->gate_up, gate, n, width, width);
  const kernels::GluFn glu = c.activation == Activation::kSilu ? ctx.kernels.swiglu : ctx.kernels.geglu;
  parallel_rows(ctx, n, 2 * n_ff, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) glu(gate + t * width, gate + t * width + n_ff, gate + t * width, n_ff);
  });
  if (tape) record(tape->act, gate, n, n_ff, width);
  matmul(s, Out{l.ffn_down, cur, id(LinearKind::kFfnDown)}, gate, width, n_embd);
  if (tape) record(tape->ffn_out, cur, n, n_embd, n_embd);
  if (c.post_norms) rms_norm_rows(ctx, cur, l.post_ffw_norm, cur, n, n_embd, n_embd, c.norm_eps);
  add_rows(ctx, x, cur, n, n_embd);
}

void embed(const Step& s) {
  const ModelConfig& c = s.model.config;
  const Weight& e = s.model.weights.token_embd;
  const int64_t row = gguf::row_bytes(e.type, c.n_embd);
  for (int64_t t = 0; t < s.n; ++t) {
    float* x = s.ctx.x.data() + t * c.n_embd;
    quant::dequantize_row(e.type, static_cast<const uint8_t*>(e.data) + s.token[t] * row, x, c.n_embd);
    if (c.embd_scale != 1.0f) {
      for (int64_t i = 0; i < c.n_embd; ++i) x[i] *= c.embd_scale;
    }
  }
}

// logits [n_rows][n_vocab] = the output matmul of hidden [n_rows][n_embd], softcapped.
void project_output(const Model& model, Context& ctx, const float* hidden, int64_t n_rows, float* logits) {
  const ModelConfig& c = model.config;
  matmul(ctx, {Out{model.weights.output, logits}}, hidden, c.n_embd, c.n_vocab, n_rows);
  if (c.final_softcap > 0.0f) {
    for (int64_t i = 0; i < n_rows * c.n_vocab; ++i) logits[i] = c.final_softcap * std::tanh(logits[i] / c.final_softcap);
  }
}

// Logits (or final-norm hidden states) of the step's rows that ask for them, written to `out` in
// order; returns the count.
int64_t compute_output(const Step& s, const uint8_t* want, float* out, Output kind) {
  const ModelConfig& c = s.model.config;
  Context& ctx = s.ctx;
  int64_t n_out = 0;
  for (int64_t t = 0; t < s.n; ++t) {
    if (!want[t]) continue;
    float* normed = kind == Output::kHidden ? out + n_out * c.n_embd : ctx.cur.data() + n_out * c.n_embd;
    ctx.kernels.rms_norm(ctx.x.data() + t * c.n_embd, s.model.weights.output_norm.f32(), normed, c.n_embd, c.norm_eps);
    ++n_out;
  }
  if (n_out == 0 || kind == Output::kHidden) return n_out;
  project_output(s.model, ctx, ctx.cur.data(), n_out, out);
  return n_out;
}

core::Status validate(const Model& model, const Batch& batch, Context& ctx) {
  const size_t n = batch.token.size();
  if (batch.pos.size() != n || batch.seq.size() != n || batch.logits.size() != n ||
      (!batch.adapters.empty() && batch.adapters.size() != n)) {
    return make_error("forward: batch arrays differ in length");
  }
  if (ctx.tape != nullptr && batch.size() > ctx.options.n_batch) {
    return make_error("forward: a recorded batch of {} tokens exceeds the step of {}", batch.size(), ctx.options.n_batch);
  }
  if (ctx.options.exact_attention) {
    if (batch.size() > ctx.options.n_batch) {
      return make_error("forward: exact attention needs the batch in one step; {} tokens exceed {}", batch.size(),
                        ctx.options.n_batch);
    }
    for (size_t i = 0; i < n; ++i) {
      const bool first = i == 0 || batch.seq[i] != batch.seq[i - 1];
      if (batch.pos[i] != (first ? 0 : batch.pos[i - 1] + 1)) {
        return make_error("forward: exact attention needs whole sequences; row {} of sequence {} is at position {}", i,
                          batch.seq[i], batch.pos[i]);
      }
    }
  }
  std::vector<int64_t>& used = ctx.seq_used;  // sized n_seq once: no allocation per call
  for (int s = 0; s < ctx.kv.n_seq(); ++s) used[static_cast<size_t>(s)] = ctx.kv.used(s);
  for (size_t i = 0; i < n; ++i) {
    if (batch.token[i] < 0 || batch.token[i] >= model.config.n_vocab) {
      return make_error("forward: token {} at batch row {} outside the vocabulary of {}", batch.token[i], i,
                        model.config.n_vocab);
    }
    if (batch.seq[i] < 0 || batch.seq[i] >= ctx.kv.n_seq()) {
      return make_error("forward: sequence id {} outside 0..{}", batch.seq[i], ctx.kv.n_seq() - 1);
    }
    if (batch.pos[i] < 0 || batch.pos[i] >= ctx.kv.n_ctx()) {
      return make_error("forward: position {} outside the context of {} tokens", batch.pos[i], ctx.kv.n_ctx());
    }
    int64_t& u = used[static_cast<size_t>(batch.seq[i])];
    if (batch.pos[i] > u) {
      return make_error("forward: position {} of sequence {} skips ahead of the {} positions it holds",
                        batch.pos[i], batch.seq[i], u);
    }
    u = batch.pos[i] + 1;
  }
  return {};
}

}  // namespace

kernels::RopeParams layer_rope(const Model& model, int64_t il) {
  const ModelConfig& c = model.config;
  kernels::RopeParams rope;
  rope.head_dim = static_cast<int>(c.head_dim);
  rope.n_rot = static_cast<int>(c.n_rot);
  rope.mode = c.rope_mode;
  rope.freq_base = c.is_swa_layer(il) ? c.rope_freq_base_swa : c.rope_freq_base;
  rope.freq_scale = c.rope_freq_scale;
  rope.freq_factors = model.weights.rope_freqs.present() ? model.weights.rope_freqs.f32() : nullptr;
  rope.stride = c.n_embd_q() + 2 * c.n_embd_kv();
  return rope;
}

kernels::SelfAttentionArgs layer_self_attention(const ModelConfig& c, int64_t il, const float* qkv, int64_t n_tokens) {
  kernels::SelfAttentionArgs a;
  a.qkv = qkv;
  a.stride = c.n_embd_q() + 2 * c.n_embd_kv();
  a.k_offset = c.n_embd_q();
  a.v_offset = c.n_embd_q() + c.n_embd_kv();
  a.n_tokens = n_tokens;
  a.n_head = static_cast<int>(c.n_head);
  a.n_head_kv = static_cast<int>(c.n_head_kv);
  a.head_dim = static_cast<int>(c.head_dim);
  a.window = c.is_swa_layer(il) ? static_cast<int32_t>(c.sliding_window) : 0;
  a.scale = c.kq_scale;
  a.softcap = c.attn_softcap;
  return a;
}

int64_t Batch::n_logits() const {
  return std::count_if(logits.begin(), logits.end(), [](uint8_t b) { return b != 0; });
}

Context::Context(const Model& model, const ContextOptions& o)
    : options(o), kernels(kernels::make_kernels()), pool(o.n_threads) {
  const ModelConfig& c = model.config;
  // Exact attention reads the step's own f32 rows and never the cache: it gets one of no layers
  // (positions and sequences still checked against it).
  kv = KvCache(o.exact_attention ? 0 : c.n_layer, c.n_embd_kv(), o.n_ctx, o.n_seq);
  seq_used.resize(static_cast<size_t>(o.n_seq));
  const auto b = static_cast<size_t>(o.n_batch);
  const ModelConfig::ActivationWidths width = c.activation_widths();
  x.resize(b * static_cast<size_t>(width.x));
  cur.resize(b * static_cast<size_t>(width.cur));
  qkv.resize(b * static_cast<size_t>(width.qkv));
  attn.resize(b * static_cast<size_t>(width.attn));
  ffn.resize(b * static_cast<size_t>(width.ffn));
  size_t scratch = 0;
  auto need = [&](const Weight& w) {
    if (w.present()) scratch = std::max(scratch, kernels::matmul_scratch_bytes(kernels, w.type, w.n_in, o.n_batch));
  };
  need(model.weights.output);
  for (const LayerWeights& l : model.weights.layers) {
    for (const Weight* w : {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_qkv, &l.attn_output, &l.ffn_gate, &l.ffn_up,
                            &l.ffn_down}) {
      need(*w);
    }
  }
  matmul_scratch.resize(scratch);
}

core::Result<std::unique_ptr<Context>> make_context(const Model& model, const ContextOptions& options) {
  ContextOptions o = options;
  if (o.n_ctx <= 0) o.n_ctx = std::min<int64_t>(model.config.n_ctx_train, 4096);
  if (o.n_ctx > (int64_t{1} << 20)) return make_error("context: n_ctx {} too large", o.n_ctx);
  if (o.n_seq <= 0 || o.n_seq > 4096) return make_error("context: n_seq {} out of range 1..4096", o.n_seq);
  if (o.n_batch <= 0 || o.n_batch > 65536) return make_error("context: n_batch {} out of range", o.n_batch);
  if (o.n_threads < 0 || o.n_threads > kMaxThreads) {
    return make_error("context: {} threads out of range 0..{} (0: all cores)", o.n_threads, kMaxThreads);
  }
  return std::make_unique<Context>(model, o);
}

core::Status output_logits(const Model& model, Context& ctx, const float* hidden, int64_t n_rows, float* logits) {
  if (n_rows < 0 || n_rows > ctx.options.n_batch) {
    return make_error("output_logits: {} rows outside 0..{}", n_rows, ctx.options.n_batch);
  }
  if (n_rows > 0) project_output(model, ctx, hidden, n_rows, logits);
  return {};
}

int64_t layer_tape_bytes_per_token(const ModelConfig& c) {
  const int64_t n_q = c.n_embd_q(), n_kv = c.n_embd_kv();
  const int64_t floats = 5 * c.n_embd + (c.qk_norm ? n_q + n_kv : 0) + (n_q + 2 * n_kv) + n_q + 3 * c.n_ff;
  return floats * static_cast<int64_t>(sizeof(float));
}

core::Status recompute_layer(const Model& model, const Batch& batch, Context& ctx, const Tape& tape, int64_t il,
                             LayerTape& out) {
  const ModelConfig& c = model.config;
  const int64_t n = batch.size();
  if (il < 0 || il >= c.n_layer || tape.layers.size() != static_cast<size_t>(c.n_layer)) {
    return make_error("recompute_layer: layer {} of a tape with {} layers", il, tape.layers.size());
  }
  const std::vector<float>& x = tape.layers[static_cast<size_t>(il)].x;
  if (n > ctx.options.n_batch || tape.n_tokens != n || x.size() != static_cast<size_t>(n * c.n_embd)) {
    return make_error("recompute_layer: the tape holds {} tokens, the batch {} (steps of {})", tape.n_tokens, n,
                      ctx.options.n_batch);
  }
  const AdapterSet* const* adapters = nullptr;
  if (!batch.adapters.empty() &&
      std::any_of(batch.adapters.begin(), batch.adapters.end(), [](const AdapterSet* a) { return a != nullptr; })) {
    adapters = batch.adapters.data();
  }
  const Step step{model, ctx, batch.token.data(), batch.pos.data(), batch.seq.data(), adapters, n};
  std::copy(x.begin(), x.end(), ctx.x.begin());
  compute_layer(step, il, nullptr, &out);
  return {};
}

core::Status forward(const Model& model, const Batch& batch, Context& ctx, float* out, Output kind) {
  OWL_TRY(validate(model, batch, ctx));
  const Clock::time_point start = ctx.profile != nullptr ? Clock::now() : Clock::time_point{};
  const int64_t width = kind == Output::kHidden ? model.config.n_embd : model.config.n_vocab;
  for (int64_t begin = 0; begin < batch.size(); begin += ctx.options.n_batch) {
    const int64_t n = std::min(ctx.options.n_batch, batch.size() - begin);
    const AdapterSet* const* adapters = nullptr;
    if (!batch.adapters.empty()) {
      adapters = batch.adapters.data() + begin;
      if (std::all_of(adapters, adapters + n, [](const AdapterSet* a) { return a == nullptr; })) adapters = nullptr;
    }
    const Step step{model, ctx, batch.token.data() + begin, batch.pos.data() + begin, batch.seq.data() + begin,
                    adapters, n};
    if (ctx.tape != nullptr) {
      ctx.tape->n_tokens = n;
      ctx.tape->layers.resize(static_cast<size_t>(model.config.n_layer));
    }
    embed(step);
    for (int64_t t = 0; t < n; ++t) {
      ctx.kv.set_used(step.seq[t], step.pos[t] + 1);
    }
    for (int64_t il = 0; il < model.config.n_layer; ++il) {
      LayerTape* lt = ctx.tape != nullptr ? &ctx.tape->layers[static_cast<size_t>(il)] : nullptr;
      compute_layer(step, il, lt, lt != nullptr && !ctx.tape->inputs_only ? lt : nullptr);
    }
    if (ctx.tape != nullptr) record(ctx.tape->x_final, ctx.x.data(), n, model.config.n_embd, model.config.n_embd);
    out += compute_output(step, batch.logits.data() + begin, out, kind) * width;
  }
  if (ctx.profile != nullptr) {
    ctx.profile->total_ns += ns_since(start);
    ++ctx.profile->forwards;
    ctx.profile->tokens += batch.size();
  }
  return {};
}

}  // namespace owl::model
