// Scalar reference row ops. Each follows the arithmetic of llama.cpp's CPU op (ggml-cpu
// ops.cpp / vec.h) where that is observable in the logits: f64 sums in RMSNorm and softmax,
// f32 theta recurrence in RoPE, the f16 GELU table.
#include <cmath>

#include "core/result.h"
#include "kernels/ref/ref.h"
#include "quant/half.h"

namespace owl::kernels {

// y = (x * (1 / sqrt(sum(x^2) / n + eps))) * w; the sum of f32 squares is accumulated in f64.
void rms_norm_ref(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

// x = exp(v - max v) / sum, v = x * scale + mask; the sum is accumulated in f64.
void softmax_ref(float* x, int64_t n, float scale, const float* mask) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = mask ? x[i] * scale + mask[i] : x[i] * scale;
    max = std::fmax(max, x[i]);
  }
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = max == -INFINITY ? 0.0f : std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// Per token t and pair i < n_rot / 2: theta_i = freq_scale * (pos * r^i) / ff[i] with
// r = base^(-2 / n_rot) and pos * r^i computed as a running f32 product (as ggml);
// (a, b) -> (a cos - b sin, a sin + b cos) * attn_factor, where the pair is
// (x[2i], x[2i + 1]) in normal mode and (x[i], x[i + n_rot / 2]) in NeoX mode.
void rope_ref(const RopeParams& p, float* x, int64_t n_tokens, const int32_t* pos) {
  OWL_CHECK(p.n_rot % 2 == 0 && p.n_rot <= p.head_dim && p.n_rot <= 1024);
  const int64_t stride = p.stride ? p.stride : static_cast<int64_t>(p.n_head) * p.head_dim;
  const int half = p.n_rot / 2;
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  float cs[512], sn[512];
  for (int64_t t = 0; t < n_tokens; ++t) {
    float theta = static_cast<float>(pos[t]);
    for (int i = 0; i < half; ++i) {
      const float ff = p.freq_factors ? p.freq_factors[i] : 1.0f;
      const float th = p.freq_scale * (theta / ff);
      cs[i] = std::cos(th) * p.attn_factor;
      sn[i] = std::sin(th) * p.attn_factor;
      theta *= theta_scale;
    }
    for (int h = 0; h < p.n_head; ++h) {
      float* v = x + t * stride + static_cast<int64_t>(h) * p.head_dim;
      for (int i = 0; i < half; ++i) {
        const int i0 = p.mode == RopeMode::kNeox ? i : 2 * i;
        const int i1 = p.mode == RopeMode::kNeox ? i + half : 2 * i + 1;
        const float a = v[i0], b = v[i1];
        v[i0] = a * cs[i] - b * sn[i];
        v[i1] = a * sn[i] + b * cs[i];
      }
    }
  }
}

// silu(x) = x / (1 + exp(-x)).
void silu_ref(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
}

// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))), evaluated as llama.cpp's
// f16 table: f16(gelu(f16(x))), with x <= -10 -> 0 and x >= 10 -> x.
float gelu_f16_ref(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  constexpr float kCoefA = 0.044715f;
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  const float h = quant::f16_to_f32(quant::f32_to_f16(x));
  const float g = 0.5f * h * (1.0f + std::tanh(kSqrt2OverPi * h * (1.0f + kCoefA * h * h)));
  return quant::f16_to_f32(quant::f32_to_f16(g));
}

void gelu_ref(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_f16_ref(x[i]);
}

void swiglu_ref(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void geglu_ref(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_f16_ref(gate[i]) * up[i];
}

void axpy_rows_ref(float* y, int64_t n, const float* c, const float* w, int64_t w_stride, int64_t k) {
  for (int64_t i = 0; i < n; ++i) {
    float acc = y[i];
    for (int64_t j = 0; j < k; ++j) acc += c[j] * w[j * w_stride + i];
    y[i] = acc;
  }
}

}  // namespace owl::kernels
