// Row ops and attention: every ISA against the reference, and the reference against fp64.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/ref/ref.h"

namespace owl::kernels {
namespace {

using test::kEps;

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

const int64_t kRowSizes[] = {1, 7, 16, 33, 4099};

TEST(RmsNorm, VariantsMatchReferenceAndFp64) {
  for (int64_t n : kRowSizes) {
    for (uint32_t seed : {1u, 2u}) {
      for (float xs : {1.0f, 1e-3f, 1e3f}) {
        const std::vector<float> x = randn(n, seed, xs), w = randn(n, seed + 10);
        std::vector<float> want(n);
        rms_norm_ref(x.data(), w.data(), want.data(), n, 1e-5f);
        double ss = 0.0;
        for (float v : x) ss += double{v} * v;
        const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
        for (int64_t i = 0; i < n; ++i) {
          // scale is 1/sqrt of an f32 mean: a few roundings of relative eps each.
          ASSERT_NEAR(want[i], x[i] * inv * w[i], 8 * kEps * std::fabs(x[i] * inv * w[i]) + 1e-30);
        }
        for (Isa isa : test::available_isas()) {
          const Kernels k = make_kernels(isa);
          std::vector<float> got(n), unweighted(n), want_unweighted(n);
          k.rms_norm(x.data(), w.data(), got.data(), n, 1e-5f);
          k.rms_norm(x.data(), nullptr, unweighted.data(), n, 1e-5f);
          rms_norm_ref(x.data(), nullptr, want_unweighted.data(), n, 1e-5f);
          for (int64_t i = 0; i < n; ++i) {
            // Both sum f32 squares in f64: the scale can differ by an ulp of the f32 mean.
            ASSERT_NEAR(got[i], want[i], 4 * kEps * std::fabs(want[i])) << isa_name(isa) << " n=" << n;
            ASSERT_NEAR(unweighted[i], want_unweighted[i], 4 * kEps * std::fabs(want_unweighted[i]));
          }
        }
      }
    }
  }
}

TEST(Softmax, VariantsMatchReferenceAndFp64WithMaskAndScale) {
  for (int64_t n : kRowSizes) {
    for (uint32_t seed : {3u, 4u}) {
      const std::vector<float> x0 = randn(n, seed, 4.0f);
      std::vector<float> mask = randn(n, seed + 1, 1.0f);
      for (int64_t i = 0; i < n; i += 3) mask[i] = -INFINITY;
      for (const float* m : {static_cast<const float*>(nullptr), static_cast<const float*>(mask.data())}) {
        std::vector<float> want = x0;
        softmax_ref(want.data(), n, 0.7f, m);
        double mx = -INFINITY, sum = 0.0;
        std::vector<double> e(n);
        for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, double{x0[i] * 0.7f} + (m ? m[i] : 0.0));
        for (int64_t i = 0; i < n; ++i) sum += e[i] = std::exp(double{x0[i] * 0.7f} + (m ? m[i] : 0.0) - mx);
        for (int64_t i = 0; i < n; ++i) {
          if (n == 1 && m) continue;  // the only element is masked
          ASSERT_NEAR(want[i], e[i] / sum, 16 * kEps * (e[i] / sum) + 1e-37);
        }
        for (Isa isa : test::available_isas()) {
          std::vector<float> got = x0;
          make_kernels(isa).softmax(got.data(), n, 0.7f, m);
          // exp to ~2 ulp, f32 sum of n positive terms.
          for (int64_t i = 0; i < n; ++i) {
            ASSERT_NEAR(got[i], want[i], (8 + n) * kEps * want[i] + 1e-37) << isa_name(isa) << " n=" << n << " i=" << i;
          }
        }
      }
    }
  }
}

TEST(Activations, VariantsMatchReferenceAndFormulas) {
  const int64_t n = 1027;
  std::vector<float> x = randn(n, 7, 5.0f), up = randn(n, 8);
  x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = -10.0f, x[4] = 9.99f;
  std::vector<float> silu(n), gelu(n), sw(n), ge(n);
  silu_ref(x.data(), silu.data(), n);
  gelu_ref(x.data(), gelu.data(), n);
  swiglu_ref(x.data(), up.data(), sw.data(), n);
  geglu_ref(x.data(), up.data(), ge.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double xd = x[i];
    ASSERT_NEAR(silu[i], xd / (1.0 + std::exp(-xd)), 4 * kEps * std::fabs(xd) + 1e-37);
    // f16 table: x rounded to f16 (rel 2^-11, |gelu'| <= 1.13), result rounded to f16.
    const double g = 0.5 * xd * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * xd * (1.0 + 0.044715 * xd * xd)));
    const double gl = xd <= -10 ? 0.0 : xd >= 10 ? xd : g;
    ASSERT_NEAR(gelu[i], gl, (1.13 * std::fabs(xd) + std::fabs(gl)) / 2048.0 + 1e-7) << xd;
    ASSERT_EQ(ge[i], gelu[i] * up[i]);
  }
  for (Isa isa : test::available_isas()) {
    const Kernels k = make_kernels(isa);
    std::vector<float> a(n), b(n), c(n), d(n);
    k.silu(x.data(), a.data(), n);
    k.swiglu(x.data(), up.data(), b.data(), n);
    k.gelu(x.data(), c.data(), n);
    k.geglu(x.data(), up.data(), d.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      // exp to ~2 ulp; AVX2 clamps exp at 2^127, so silu(-100) may be -3e-37 instead of -4e-42.
      ASSERT_NEAR(a[i], silu[i], 8 * kEps * std::fabs(silu[i]) + 1e-35) << isa_name(isa) << " x=" << x[i];
      ASSERT_NEAR(b[i], sw[i], 8 * kEps * std::fabs(sw[i]) + 1e-35) << isa_name(isa);
      ASSERT_NEAR(c[i], gelu[i], std::fabs(gelu[i]) / 1024.0 + 1e-7) << isa_name(isa);
      ASSERT_NEAR(d[i], ge[i], std::fabs(ge[i]) / 1024.0 + 1e-7) << isa_name(isa);
    }
  }
}

// y += c · W over k rows: the reference against fp64, every ISA against the reference, with
// strides wider than n and column counts around each variant's blocks.
TEST(AxpyRows, VariantsMatchReferenceAndFp64) {
  for (int64_t n : {1, 7, 8, 16, 33, 64, 100, 257}) {
    for (int64_t k : {0, 1, 3, 16, 70}) {
      const int64_t stride = n + 5;
      const std::vector<float> c = randn(static_cast<size_t>(k), 40, 1.0f), w = randn(static_cast<size_t>(k * stride), 41),
                               y0 = randn(static_cast<size_t>(n), 42);
      std::vector<float> want = y0;
      axpy_rows_ref(want.data(), n, c.data(), w.data(), stride, k);
      std::vector<double> bound(static_cast<size_t>(n));  // k + 1 roundings, each within eps of the sum of |terms|
      for (int64_t i = 0; i < n; ++i) {
        double exact = y0[i], mag = std::fabs(y0[i]);
        for (int64_t j = 0; j < k; ++j) {
          exact += double{c[j]} * w[j * stride + i];
          mag += std::fabs(double{c[j]} * w[j * stride + i]);
        }
        bound[i] = static_cast<double>(k + 2) * kEps * mag;
        ASSERT_NEAR(want[i], exact, bound[i]) << "n=" << n << " k=" << k;
      }
      for (Isa isa : test::available_isas()) {
        const Kernels kern = make_kernels(isa);
        std::vector<float> got = y0;
        kern.axpy_rows(got.data(), n, c.data(), w.data(), stride, k);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_NEAR(got[i], want[i], 2 * bound[i]) << isa_name(isa) << " n=" << n << " k=" << k << " i=" << i;
        }
      }
    }
  }
}

// F16 and BF16 rows widened to f32: every one of the 65536 bit patterns, every ISA bit for bit
// against the reference (NaNs stay NaNs), at lengths around each variant's vector width.
TEST(WidenRow, EveryHalfAndBfloatPatternMatchesTheReference) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  for (const bool bf : {false, true}) {
    std::vector<float> want(all.size());
    (bf ? widen_row_bf16_ref : widen_row_f16_ref)(all.data(), want.data(), static_cast<int64_t>(all.size()));
    EXPECT_EQ(want[bf ? 0x3f80 : 0x3c00], 1.0f);
    for (Isa isa : test::available_isas()) {
      const Kernels k = make_kernels(isa);
      for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{17}, int64_t{65536 - 3000}}) {
        for (int64_t off : {int64_t{0}, int64_t{3}}) {
          std::vector<float> got(static_cast<size_t>(n), -1.0f);
          (bf ? k.widen_bf16 : k.widen_f16)(all.data() + off * 1000, got.data(), n);
          for (int64_t i = 0; i < n; ++i) {
            const float w = want[static_cast<size_t>(off * 1000 + i)];
            if (std::isnan(w)) {
              ASSERT_TRUE(std::isnan(got[static_cast<size_t>(i)])) << isa_name(isa);
            } else {
              ASSERT_EQ(std::bit_cast<uint32_t>(got[static_cast<size_t>(i)]), std::bit_cast<uint32_t>(w))
                  << isa_name(isa) << (bf ? " bf16 " : " f16 ") << off * 1000 + i;
            }
          }
        }
      }
    }
  }
}

// RoPE against fp64 angles pos * base^(-2i/n_rot) * freq_scale / ff[i]; the f32 running
// product drifts by about (i + 2) eps relative in theta.
TEST(Rope, ReferenceMatchesFp64NormalAndNeox) {
  const int n_head = 3, head_dim = 40;
  const int32_t pos[] = {0, 1, 17, 511, 4000};
  std::vector<float> ff(16);
  for (int i = 0; i < 16; ++i) ff[i] = 1.0f + 0.5f * i;
  for (RopeMode mode : {RopeMode::kNormal, RopeMode::kNeox}) {
    for (int n_rot : {32, 40}) {
      for (const float* factors : {static_cast<const float*>(nullptr), static_cast<const float*>(ff.data())}) {
        if (factors && n_rot != 32) continue;
        const RopeParams p{.n_head = n_head, .head_dim = head_dim, .n_rot = n_rot, .mode = mode,
                           .freq_base = 10000.0f, .freq_scale = 0.5f, .attn_factor = 1.0f, .freq_factors = factors};
        const std::vector<float> x0 = randn(5 * n_head * head_dim, 11);
        for (Isa isa : test::available_isas()) {
          std::vector<float> x = x0;
          make_kernels(isa).rope(p, x.data(), 5, pos);
          for (int t = 0; t < 5; ++t) {
            for (int h = 0; h < n_head; ++h) {
              const float* in = x0.data() + (t * n_head + h) * head_dim;
              const float* out = x.data() + (t * n_head + h) * head_dim;
              for (int i = 0; i < n_rot / 2; ++i) {
                const double theta = pos[t] * std::pow(10000.0, -2.0 * i / n_rot) * 0.5 / (factors ? factors[i] : 1.0);
                const int i0 = mode == RopeMode::kNeox ? i : 2 * i;
                const int i1 = mode == RopeMode::kNeox ? i + n_rot / 2 : 2 * i + 1;
                const double a = in[i0], b = in[i1];
                const double tol = ((i + 4) * kEps * theta + 4 * kEps) * (std::fabs(a) + std::fabs(b));
                ASSERT_NEAR(out[i0], a * std::cos(theta) - b * std::sin(theta), tol) << t << " " << i;
                ASSERT_NEAR(out[i1], a * std::sin(theta) + b * std::cos(theta), tol) << t << " " << i;
              }
              for (int d = n_rot; d < head_dim; ++d) ASSERT_EQ(out[d], in[d]);
            }
          }
        }
      }
    }
  }
}

struct AttnCase {
  int n_head, n_head_kv, head_dim;
  int64_t n_tokens, n_kv;
  int32_t window;
  float softcap;
  bool use_mask, q_f16, v_acc_f16;
};

// Naive fp64 attention over the same f16 K/V (no f16 emulation).
std::vector<double> attention_fp64(const AttentionArgs& a) {
  std::vector<double> out(static_cast<size_t>(a.n_tokens * a.n_head * a.head_dim), 0.0);
  const int group = a.n_head / a.n_head_kv;
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    for (int h = 0; h < a.n_head; ++h) {
      const int g = h / group;
      std::vector<double> s(static_cast<size_t>(a.n_kv), -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = 0; j < a.n_kv; ++j) {
        float mv;
        if (!attention_visible(a, t, j, &mv)) continue;
        double dot = 0.0;
        for (int d = 0; d < a.head_dim; ++d) {
          dot += double{a.q[(t * a.n_head + h) * a.head_dim + d]} *
                 quant::f16_to_f32(a.k[(j * a.n_head_kv + g) * a.head_dim + d]);
        }
        dot *= a.scale;
        if (a.softcap > 0) dot = a.softcap * std::tanh(dot / a.softcap);
        s[j] = dot + mv;
        mx = std::fmax(mx, s[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < a.n_kv; ++j) sum += s[j] == -INFINITY ? 0.0 : std::exp(s[j] - mx);
      for (int64_t j = 0; j < a.n_kv; ++j) {
        if (s[j] == -INFINITY) continue;
        const double p = std::exp(s[j] - mx) / sum;
        for (int d = 0; d < a.head_dim; ++d) {
          out[(t * a.n_head + h) * a.head_dim + d] += p * quant::f16_to_f32(a.v[(j * a.n_head_kv + g) * a.head_dim + d]);
        }
      }
    }
  }
  return out;
}

TEST(Attention, VariantsMatchReferenceAndFp64) {
  const AttnCase cases[] = {
      {4, 2, 32, 1, 37, 0, 0.0f, false, false, false},   // decode, GQA 2:1
      {8, 2, 64, 17, 50, 0, 0.0f, false, false, false},  // prefill, GQA 4:1
      {4, 4, 48, 9, 20, 8, 0.1f, false, false, false},   // sliding window + soft-cap
      {6, 3, 16, 5, 12, 0, 0.0f, true, true, true},      // explicit mask, llama.cpp f16 emulation
      {2, 1, 36, 3, 9, 0, 0.0f, false, false, false},    // head_dim not a multiple of 16
      {16, 2, 64, 7, 40, 0, 0.0f, false, true, true},    // GQA 8:1 (TinyLlama), f16 emulation
      {24, 2, 32, 3, 21, 0, 0.0f, false, true, true},    // GQA 12:1: two score trees
      // Head sizes with a blocked AVX-512 version, over more keys than one block (128):
      {32, 4, 64, 3, 300, 0, 0.0f, false, true, true},   // TinyLlama's heads, 300 keys
      {24, 2, 128, 2, 260, 0, 0.0f, true, true, true},   // GQA 12:1, head 128, mask
      {8, 8, 96, 3, 140, 50, 0.2f, false, false, false}, // head 96 (Phi-3), window + soft-cap
      {16, 1, 128, 2, 129, 0, 0.0f, false, false, false},  // 16 heads on one KV head
  };
  core::ThreadPool pool(2);
  for (const AttnCase& c : cases) {
    const int64_t q_n = c.n_tokens * c.n_head * c.head_dim, kv_n = c.n_kv * c.n_head_kv * c.head_dim;
    const std::vector<float> q = randn(q_n, 21, 1.0f), kf = randn(kv_n, 22, 1.0f), vf = randn(kv_n, 23, 1.0f);
    std::vector<uint16_t> k(kv_n), v(kv_n);
    for (int64_t i = 0; i < kv_n; ++i) k[i] = quant::f32_to_f16(kf[i]), v[i] = quant::f32_to_f16(vf[i]);
    std::vector<int32_t> q_pos(c.n_tokens);
    for (int64_t t = 0; t < c.n_tokens; ++t) q_pos[t] = static_cast<int32_t>(c.n_kv - c.n_tokens + t);
    std::vector<float> mask(static_cast<size_t>(c.n_tokens * c.n_kv), 0.0f);
    for (int64_t t = 0; t < c.n_tokens; ++t)
      for (int64_t j = 0; j < c.n_kv; ++j) mask[t * c.n_kv + j] = (j * 7 + t) % 5 == 0 ? -INFINITY : 0.1f * (j % 3);
    AttentionArgs a{.q = q.data(), .k = k.data(), .v = v.data(), .n_tokens = c.n_tokens, .n_kv = c.n_kv,
                    .n_head = c.n_head, .n_head_kv = c.n_head_kv, .head_dim = c.head_dim, .q_pos = q_pos.data(),
                    .window = c.window, .mask = c.use_mask ? mask.data() : nullptr,
                    .scale = 1.0f / std::sqrt(float(c.head_dim)), .softcap = c.softcap, .q_f16 = c.q_f16,
                    .v_acc_f16 = c.v_acc_f16};
    std::vector<float> want(q_n, NAN);
    a.out = want.data();
    attention(make_kernels(Isa::kScalar), pool, a);
    const std::vector<double> exact = attention_fp64(a);
    // f32 dot products (head_dim terms) feed exp: |ds| <= (head_dim + 4) eps sum|q k| scale;
    // with f16 emulation Q and the accumulator carry 2^-11 relative rounding per step.
    const double budget = c.q_f16 ? 2e-2 : 2e-4;
    for (int64_t i = 0; i < q_n; ++i) ASSERT_NEAR(want[i], exact[i], budget) << i;
    for (Isa isa : test::available_isas()) {
      std::vector<float> got(q_n, NAN);
      a.out = got.data();
      attention(make_kernels(isa), pool, a);
      const double tol = c.v_acc_f16 ? 4e-3 : 2e-5;
      for (int64_t i = 0; i < q_n; ++i) ASSERT_NEAR(got[i], want[i], tol) << isa_name(isa) << " i=" << i;
    }
  }
}

// Equal scores (zero queries) make every softmax factor exactly 1 (or 0 on the first key), so the
// emulated f16 accumulator is a rounded running sum of V rows that every variant must reproduce
// bit for bit: a variant that dropped one of the f16 roundings would be off by many f16 ulps.
TEST(Attention, F16AccumulatorIsReproducedExactly) {
  core::ThreadPool pool(2);
  for (const int head_dim : {32, 64, 128}) {
    const int n_head = 8, n_head_kv = 2;
    const int64_t n_tokens = 2, n_kv = 300;
    const int64_t kv_n = n_kv * n_head_kv * head_dim;
    const std::vector<float> q(static_cast<size_t>(n_tokens * n_head * head_dim), 0.0f);
    const std::vector<float> vf = randn(kv_n, 31, 4.0f);
    std::vector<uint16_t> k(kv_n, 0), v(kv_n);
    for (int64_t i = 0; i < kv_n; ++i) v[i] = quant::f32_to_f16(vf[i]);
    AttentionArgs a{.q = q.data(), .k = k.data(), .v = v.data(), .n_tokens = n_tokens, .n_kv = n_kv, .n_head = n_head,
                    .n_head_kv = n_head_kv, .head_dim = head_dim, .scale = 0.125f, .q_f16 = true, .v_acc_f16 = true};
    std::vector<float> want(q.size(), NAN);
    a.out = want.data();
    attention(make_kernels(Isa::kScalar), pool, a);
    for (Isa isa : test::available_isas()) {
      std::vector<float> got(q.size(), NAN);
      a.out = got.data();
      attention(make_kernels(isa), pool, a);
      for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " head_dim " << head_dim << " i=" << i;
    }
  }
}

}  // namespace
}  // namespace owl::kernels
