// matmul / dot products: every ISA this CPU has against the scalar reference (tolerance from
// f32 summation order), and the reference against an fp64 dequantize-then-dot of the f32
// activations (budget from the activation format's rounding).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/ref/ref.h"
#include "quant/half.h"
#include "quant/quant.h"

namespace owl::kernels {
namespace {

using test::Decoded;
using test::Fill;
using test::kEps;

const TensorType kTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,
                             TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                             TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                             TensorType::Q6_K, TensorType::Q8_K};

// n_in: an odd number of blocks (and, for plain types, not a multiple of any vector width, then
// a multiple of all of them).
std::vector<int64_t> sizes_for(TensorType t) {
  const int64_t bs = gguf::type_info(t).block_size;
  if (bs == 1) return {77, 1031, 256};
  if (bs == 32) return {32 * 7, 32 * 33};
  return {256, 256 * 3};
}

struct Case {
  TensorType type;
  int64_t n_in, n_out, n_rows;
  Fill w_fill;
  float x_scale;
  uint32_t seed;
};

std::string describe(const Case& c, Isa isa) {
  return std::string(gguf::type_info(c.type).name) + " isa=" + std::string(isa_name(isa)) +
         " n_in=" + std::to_string(c.n_in) + " n_out=" + std::to_string(c.n_out) +
         " n_rows=" + std::to_string(c.n_rows) + " fill=" + std::to_string(static_cast<int>(c.w_fill)) +
         " x_scale=" + std::to_string(c.x_scale) + " seed=" + std::to_string(c.seed);
}

struct Problem {
  std::vector<uint8_t> w;   // [n_out] rows
  std::vector<float> x;     // [n_rows, n_in]
  std::vector<Decoded> w64; // per output row
};

Problem make_problem(const Case& c) {
  std::mt19937 rng(c.seed);
  Problem p;
  for (int64_t o = 0; o < c.n_out; ++o) {
    std::vector<uint8_t> row = test::make_weight_row(c.type, c.n_in, c.w_fill, rng);
    p.w64.push_back(test::decode_row(c.type, row.data(), c.n_in));
    p.w.insert(p.w.end(), row.begin(), row.end());
  }
  std::normal_distribution<float> normal(0.0f, 1.0f);
  p.x.resize(static_cast<size_t>(c.n_rows * c.n_in));
  for (float& v : p.x) v = normal(rng) * c.x_scale;
  return p;
}

std::vector<float> run_matmul(const Kernels& k, core::ThreadPool& pool, const Case& c, const Problem& p) {
  std::vector<float> y(static_cast<size_t>(c.n_rows * c.n_out), NAN);
  std::vector<uint8_t> scratch(matmul_scratch_bytes(k, c.type, c.n_in, c.n_rows));
  matmul(k, pool,
         MatmulArgs{.w_type = c.type, .w = p.w.data(), .x = p.x.data(), .y = y.data(), .n_in = c.n_in,
                    .n_out = c.n_out, .n_rows = c.n_rows, .scratch = scratch.data(),
                    .scratch_bytes = scratch.size()});
  return y;
}

// Per output: S = sum_i (|a_i| + |b_i|) |xq_i| over the quantized activations, the scale of
// every partial sum; and the budget of the activation rounding against the f32 x.
struct Bounds {
  double s = 0.0;
  double act_err = 0.0;
  double exact = 0.0;  // fp64 dot of the decoded weights with the original f32 x
};

Bounds bounds_for(const Kernels& ref, const Case& c, const Problem& p, int64_t r, int64_t o) {
  const TensorType act = ref.dot_for(c.type).act_type;
  const float* x = p.x.data() + r * c.n_in;
  const Decoded& w = p.w64[static_cast<size_t>(o)];
  std::vector<double> xq(x, x + c.n_in);
  std::vector<double> step(static_cast<size_t>(c.n_in), 0.0);
  const bool half = act == TensorType::F16 || act == TensorType::BF16;
  if (act != TensorType::F32) {
    std::vector<uint8_t> q(static_cast<size_t>(gguf::row_bytes(act, c.n_in)));
    const int64_t bs = gguf::type_info(act).block_size;
    activation_quantizer(ref, act)(x, q.data(), c.n_in);
    xq = test::decode_row(act, q.data(), c.n_in).a;
    for (int64_t b0 = 0; !half && b0 < c.n_in; b0 += bs) {
      double amax = 0.0;
      for (int64_t i = b0; i < b0 + bs; ++i) amax = std::max(amax, std::fabs(double{x[i]}));
      for (int64_t i = b0; i < b0 + bs; ++i) step[i] = amax / 127.0;
    }
  }
  Bounds bd;
  for (int64_t i = 0; i < c.n_in; ++i) {
    bd.s += (std::fabs(w.a[i]) + std::fabs(w.b[i])) * std::fabs(xq[i]);
    bd.exact += (w.a[i] - w.b[i]) * x[i];
    if (act == TensorType::F16) {  // round to nearest: half an ulp, 2^-25 among subnormals
      bd.act_err += std::fabs(w.a[i]) * (std::fabs(double{x[i]}) * 0x1p-11 + 0x1p-25);
    } else if (act == TensorType::BF16) {
      bd.act_err += std::fabs(w.a[i]) * (std::fabs(double{x[i]}) * 0x1p-8 + 0x1p-134);
    } else {
      // |x - d16 q| <= d / 2 (rounding of q) + |x| 2^-10 (f16 rounding of d).
      bd.act_err += std::fabs(w.a[i] - w.b[i]) * (0.5 * step[i] + std::fabs(double{x[i]}) / 1024.0);
    }
  }
  if (act == TensorType::Q8_1) {  // s = f16(d sum q) is rounded to 11 bits per block
    for (int64_t b0 = 0; b0 < c.n_in; b0 += 32) {
      double sx = 0.0;
      for (int64_t i = b0; i < b0 + 32; ++i) sx += xq[i];
      bd.act_err += std::fabs(w.b[b0]) * std::fabs(sx) / 1024.0;
      bd.s += std::fabs(w.b[b0]) * std::fabs(sx);
    }
  }
  return bd;
}

class MatmulTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(MatmulTest, VariantsMatchReferenceAndReferenceMatchesFp64) {
  const TensorType type = GetParam();
  const Kernels ref = make_kernels(Isa::kScalar);
  core::ThreadPool pool(2);
  const int64_t bs = gguf::type_info(type).block_size;
  int checked = 0;
  for (int64_t n_in : sizes_for(type)) {
    for (int64_t n_rows : {1, 3, 17}) {
      for (uint32_t seed : {1u, 2u, 3u}) {
        const Fill fills[] = {Fill::kRandom, Fill::kZeros, Fill::kHuge, Fill::kTiny};
        // Q8_0/Q8_1 store d as f16: below ~1e-2 it is subnormal and the format loses precision.
        const TensorType act = ref.dot_for(type).act_type;
        const float tiny = act == TensorType::Q8_0 || act == TensorType::Q8_1 ? 1.0e-2f : 1.0e-6f;
        // Q8_1 also stores s = d sum q as f16, and F16 activations are f16: below 65504.
        const float huge = act == TensorType::Q8_1 || act == TensorType::F16 ? 1.0e3f : 1.0e4f;
        const float x_scales[] = {1.0f, huge, tiny};
        // 53 outputs: three whole 16-row weight panels and a partial one; for the 32-row panels,
        // a whole one and one whose second half is partial.
        const Case c{.type = type, .n_in = n_in, .n_out = seed == 2 ? 53 : 13, .n_rows = n_rows,
                     .w_fill = fills[(seed + n_rows) % 4], .x_scale = x_scales[(seed + n_in) % 3], .seed = seed};
        const Problem p = make_problem(c);
        const std::vector<float> y_ref = run_matmul(ref, pool, c, p);
        // Blocks summed sequentially: each partial sum and each scaled block term rounds once.
        const double n_terms = static_cast<double>(bs == 1 ? n_in : n_in / bs);
        for (int64_t r = 0; r < c.n_rows; ++r) {
          for (int64_t o = 0; o < c.n_out; ++o) {
            const Bounds bd = bounds_for(ref, c, p, r, o);
            const double got = y_ref[r * c.n_out + o];
            const double budget = bd.act_err + 2.0 * (n_terms + 8) * kEps * bd.s + 1e-35;
            ASSERT_LE(std::fabs(got - bd.exact), budget)
                << describe(c, Isa::kScalar) << " r=" << r << " o=" << o << " exact=" << bd.exact;
            if (c.w_fill == Fill::kZeros) {
              ASSERT_EQ(got, 0.0);
            }
          }
        }
        for (Isa isa : test::available_isas()) {
          if (isa == Isa::kScalar) continue;
          const std::vector<float> y = run_matmul(make_kernels(isa), pool, c, p);
          for (int64_t r = 0; r < c.n_rows; ++r) {
            for (int64_t o = 0; o < c.n_out; ++o) {
              const Bounds bd = bounds_for(ref, c, p, r, o);
              const double tol = 2.0 * (n_terms + 8) * kEps * bd.s + 1e-35;
              ASSERT_LE(std::fabs(double{y[r * c.n_out + o]} - y_ref[r * c.n_out + o]), tol)
                  << describe(c, isa) << " r=" << r << " o=" << o << " ref=" << y_ref[r * c.n_out + o];
              ++checked;
            }
          }
        }
      }
    }
  }
  if (test::available_isas().size() > 1) {
    EXPECT_GT(checked, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(gguf::type_info(info.param).name); });

// The test's fp64 decoder agrees with quant's dequantize_row (written separately): a wrong
// element order in either shows up here rather than as a budget failure above.
TEST_P(MatmulTest, Fp64DecoderMatchesQuantDequantize) {
  const TensorType type = GetParam();
  std::mt19937 rng(17);
  const int64_t n = sizes_for(type).back();
  const std::vector<uint8_t> row = test::make_weight_row(type, n, Fill::kRandom, rng);
  const Decoded d = test::decode_row(type, row.data(), n);
  std::vector<float> got(static_cast<size_t>(n));
  ASSERT_TRUE(quant::dequantize_row(type, row.data(), got.data(), n));
  for (int64_t i = 0; i < n; ++i) {
    // quant computes d * sc * q - dmin * m in f32: a few roundings of each part.
    const double w = d.a[i] - d.b[i];
    ASSERT_NEAR(got[i], w, 4 * kEps * (std::fabs(d.a[i]) + std::fabs(d.b[i]))) << i;
  }
}

// Strided X/Y (views) and the dot called directly with every n_x.
TEST(Matmul, StridesAndRowCountsAgree) {
  const Kernels k = make_kernels();
  core::ThreadPool pool(2);
  const Case c{.type = TensorType::Q4_0, .n_in = 96, .n_out = 7, .n_rows = 5, .w_fill = Fill::kRandom, .x_scale = 1.0f, .seed = 9};
  const Problem p = make_problem(c);
  const std::vector<float> y = run_matmul(k, pool, c, p);
  std::vector<float> xs(static_cast<size_t>(c.n_rows * 100), 0.0f);
  for (int64_t r = 0; r < c.n_rows; ++r) std::copy_n(p.x.data() + r * c.n_in, c.n_in, xs.data() + r * 100);
  std::vector<float> ys(static_cast<size_t>(c.n_rows * 9), -1.0f);
  std::vector<uint8_t> scratch(matmul_scratch_bytes(k, c.type, c.n_in, c.n_rows));
  matmul(k, pool, MatmulArgs{.w_type = c.type, .w = p.w.data(), .x = xs.data(), .y = ys.data(), .n_in = c.n_in,
                             .n_out = c.n_out, .n_rows = c.n_rows, .x_stride = 100, .y_stride = 9,
                             .scratch = scratch.data(), .scratch_bytes = scratch.size()});
  for (int64_t r = 0; r < c.n_rows; ++r) {
    for (int64_t o = 0; o < c.n_out; ++o) EXPECT_EQ(ys[r * 9 + o], y[r * c.n_out + o]);
    EXPECT_EQ(ys[r * 9 + 7], -1.0f);  // untouched beyond n_out
  }
}

// A group of matmuls over the same X (Q, K, V; gate and up) gives each one's result bit for bit,
// writing into one interleaved Y: weight types that share an activation format (Q4_0, Q8_0)
// and ones that do not (Q4_K beside Q4_0), at decode, tile and panel row counts, on every ISA.
TEST(Matmul, GroupsGiveEachMatmulsOwnResult) {
  core::ThreadPool pool(2);
  const int64_t n_in = 256;
  const std::vector<std::vector<std::pair<TensorType, int64_t>>> groups = {
      {{TensorType::Q4_0, 40}, {TensorType::Q8_0, 8}, {TensorType::Q4_0, 8}},
      {{TensorType::Q4_0, 24}, {TensorType::Q4_K, 24}},
      {{TensorType::F16, 20}, {TensorType::F16, 36}},
      {{TensorType::Q6_K, 16}, {TensorType::Q4_K, 5}, {TensorType::Q4_K, 0}}};
  for (Isa isa : test::available_isas()) {
    const Kernels k = make_kernels(isa);
    for (const auto& group : groups) {
      for (int64_t n_rows : {1, 3, 20, 300}) {
        int64_t width = 0;
        std::vector<Problem> problems;
        for (size_t i = 0; i < group.size(); ++i) {
          problems.push_back(make_problem(Case{.type = group[i].first, .n_in = n_in, .n_out = group[i].second,
                                               .n_rows = n_rows, .w_fill = Fill::kRandom, .x_scale = 1.0f,
                                               .seed = static_cast<uint32_t>(31 + i)}));
          problems[i].x = problems[0].x;
          width += group[i].second;
        }
        size_t scratch_bytes = 0;
        for (const auto& [type, n_out] : group) scratch_bytes = std::max(scratch_bytes, matmul_scratch_bytes(k, type, n_in, n_rows));
        std::vector<uint8_t> scratch(scratch_bytes);
        std::vector<float> y(static_cast<size_t>(n_rows * width), NAN);
        std::vector<MatmulArgs> args;
        int64_t col = 0;
        for (size_t i = 0; i < group.size(); ++i) {
          args.push_back(MatmulArgs{.w_type = group[i].first, .w = problems[i].w.data(), .x = problems[0].x.data(),
                                    .y = y.data() + col, .n_in = n_in, .n_out = group[i].second, .n_rows = n_rows,
                                    .y_stride = width, .scratch = scratch.data(), .scratch_bytes = scratch.size()});
          col += group[i].second;
        }
        matmul(k, pool, args);
        col = 0;
        for (size_t i = 0; i < group.size(); ++i) {
          const Case c{.type = group[i].first, .n_in = n_in, .n_out = group[i].second, .n_rows = n_rows};
          const std::vector<float> alone = run_matmul(k, pool, c, problems[i]);
          for (int64_t r = 0; r < n_rows; ++r) {
            for (int64_t o = 0; o < c.n_out; ++o) {
              ASSERT_EQ(y[r * width + col + o], alone[r * c.n_out + o])
                  << isa_name(isa) << " part " << i << " " << gguf::type_info(c.type).name << " rows " << n_rows
                  << " r=" << r << " o=" << o;
            }
          }
          col += group[i].second;
        }
      }
    }
  }
}

// Q4_0 packed at load (pack_weights): each byte where the layout puts it, and matmuls on it within
// the summation-order tolerance of the reference at decode (1-4 rows), panel and odd row counts,
// including a group that mixes packed and GGUF-layout weights.
TEST(Matmul, PackedWeightsMatchTheReference) {
  EXPECT_TRUE(packable(TensorType::Q4_0, 32, 64));
  EXPECT_FALSE(packable(TensorType::Q4_0, 40, 64));  // not whole groups of 16 rows
  EXPECT_FALSE(packable(TensorType::Q8_0, 32, 64));
  {
    const Case c{.type = TensorType::Q4_0, .n_in = 96, .n_out = 32, .n_rows = 1, .w_fill = Fill::kRandom, .seed = 4};
    const Problem p = make_problem(c);
    std::vector<uint8_t> packed(p.w.size());
    pack_weights(c.type, p.w.data(), c.n_out, c.n_in, packed.data());
    const auto* rows = reinterpret_cast<const quant::BlockQ4_0*>(p.w.data());
    const int64_t nb = 3, group = 16 * nb * 18;
    for (int64_t o = 0; o < c.n_out; ++o) {
      const uint8_t* g = packed.data() + o / 16 * group;
      const int64_t l = o % 16;
      for (int64_t b = 0; b < nb; ++b) {
        const quant::BlockQ4_0& block = rows[o * nb + b];
        ASSERT_EQ(std::memcmp(g + nb * 256 + b * 32 + l * 2, &block.d, 2), 0) << o << " " << b;
        for (int j = 0; j < 16; ++j) ASSERT_EQ(g[b * 256 + j / 4 * 64 + l * 4 + j % 4], block.qs[j]) << o << " " << b << " " << j;
      }
    }
  }
  const Kernels ref = make_kernels(Isa::kScalar);
  core::ThreadPool pool(2);
  int checked = 0;
  for (Isa isa : test::available_isas()) {
    const Kernels k = make_kernels(isa);
    if (!reads_packed(k, TensorType::Q4_0)) continue;
    for (int64_t n_in : {32 * 7, 32 * 33, 2048}) {
      for (int64_t n_rows : {1, 2, 3, 4, 5, 8, 16, 17, 300}) {
        for (uint32_t seed : {1u, 2u, 3u}) {
          const Fill fills[] = {Fill::kRandom, Fill::kZeros, Fill::kHuge, Fill::kTiny};
          const Case c{.type = TensorType::Q4_0, .n_in = n_in, .n_out = 16 * static_cast<int64_t>(seed + 1),
                       .n_rows = n_rows, .w_fill = fills[(seed + n_rows) % 4], .x_scale = seed == 3 ? 1e-2f : 1.0f,
                       .seed = seed};
          const Problem p = make_problem(c);
          std::vector<uint8_t> packed(p.w.size()), fast(p.w.size());
          pack_weights(c.type, p.w.data(), c.n_out, c.n_in, packed.data());
          k.dot_for(c.type).pack(p.w.data(), c.n_out, c.n_in, fast.data());
          ASSERT_EQ(packed, fast) << describe(c, isa) << ": the kernels' pack differs from the reference";
          const std::vector<float> y_ref = run_matmul(ref, pool, c, p);
          // Packed (c.n_out rows) and GGUF-layout (the first 16 rows again) in one group.
          std::vector<float> y(static_cast<size_t>(n_rows * (c.n_out + 16)), NAN);
          std::vector<uint8_t> scratch(matmul_scratch_bytes(k, c.type, c.n_in, n_rows));
          const int64_t width = c.n_out + 16;
          const MatmulArgs args[] = {
              {.w_type = c.type, .w = packed.data(), .x = p.x.data(), .y = y.data(), .n_in = n_in, .n_out = c.n_out,
               .n_rows = n_rows, .y_stride = width, .scratch = scratch.data(), .scratch_bytes = scratch.size(),
               .w_packed = true},
              {.w_type = c.type, .w = p.w.data(), .x = p.x.data(), .y = y.data() + c.n_out, .n_in = n_in, .n_out = 16,
               .n_rows = n_rows, .y_stride = width, .scratch = scratch.data(), .scratch_bytes = scratch.size()}};
          matmul(k, pool, args);
          Case first16 = c;
          first16.n_out = 16;
          const std::vector<float> unpacked = run_matmul(k, pool, first16, p);
          for (int64_t r = 0; r < n_rows; ++r) {
            for (int64_t o = 0; o < c.n_out; ++o) {
              const Bounds bd = bounds_for(ref, c, p, r, o);
              const double tol = 2.0 * (static_cast<double>(n_in / 32) + 8) * kEps * bd.s + 1e-35;
              ASSERT_LE(std::fabs(double{y[r * width + o]} - y_ref[r * c.n_out + o]), tol)
                  << describe(c, isa) << " packed r=" << r << " o=" << o << " ref=" << y_ref[r * c.n_out + o];
              if (o < 16) {
                ASSERT_EQ(y[r * width + c.n_out + o], unpacked[r * 16 + o]) << describe(c, isa) << " r=" << r;
              }
              if (c.w_fill == Fill::kZeros) {
                ASSERT_EQ(y[r * width + o], 0.0f);
              }
              ++checked;
            }
          }
        }
      }
    }
  }
  if (detect_cpu_features().avx512 && detect_cpu_features().avx512_vnni) {
    EXPECT_GT(checked, 0);
  }
}

// The SIMD activation quantizers are bit-exact with the reference, ties included.
TEST(Quantize, Q8_0VariantsBitExact) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(32 * 41);
  for (float& v : x) v = normal(rng);
  for (int j = 0; j < 32; ++j) x[j] = j == 0 ? 127.0f : (j % 2 ? 1.0f : -1.0f) * (j + 0.5f);  // ties
  for (int j = 32; j < 64; ++j) x[j] = 0.0f;
  for (int j = 64; j < 96; ++j) x[j] *= 1e-30f;
  std::vector<uint8_t> want(gguf::row_bytes(TensorType::Q8_0, x.size()));
  quantize_row_q8_0_ref(x.data(), want.data(), static_cast<int64_t>(x.size()));
  const auto* b0 = reinterpret_cast<const quant::BlockQ8_0*>(want.data());
  EXPECT_EQ(b0->qs[2], -2);  // -2.5 rounds half to even
  EXPECT_EQ(b0->qs[3], 4);   // 3.5
  for (Isa isa : test::available_isas()) {
    std::vector<uint8_t> got(want.size());
    make_kernels(isa).quantize_q8_0(x.data(), got.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(got, want) << isa_name(isa);
  }
}

// Panel rows hold Q8_0's values biased to unsigned bytes, then its f16-rounded scales as f32:
// the reference against Q8_0's own quantizer, the variants bit-exact with the reference.
TEST(Quantize, PanelQ8_0MatchesQ8_0AndVariantsBitExact) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 32 * 23;
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  for (int j = 0; j < 32; ++j) x[j] = j == 0 ? 127.0f : (j % 2 ? 1.0f : -1.0f) * (j + 0.5f);  // ties
  for (int j = 32; j < 64; ++j) x[j] = 0.0f;
  for (int j = 64; j < 96; ++j) x[j] *= 1e-30f;  // a subnormal f16 scale
  std::vector<uint8_t> q8(gguf::row_bytes(TensorType::Q8_0, n));
  quantize_row_q8_0_ref(x.data(), q8.data(), n);
  std::vector<uint8_t> want(panel_q8_0_row_bytes(n));
  quantize_row_panel_q8_0_ref(x.data(), want.data(), n);
  const auto* blocks = reinterpret_cast<const quant::BlockQ8_0*>(q8.data());
  for (int64_t b = 0; b < n / 32; ++b) {
    for (int j = 0; j < 32; ++j) ASSERT_EQ(want[b * 32 + j], static_cast<uint8_t>(blocks[b].qs[j] + 128)) << b;
    float d;
    std::memcpy(&d, want.data() + n + b * 4, 4);
    ASSERT_EQ(d, quant::f16_to_f32(blocks[b].d)) << b;
  }
  for (Isa isa : test::available_isas()) {
    std::vector<uint8_t> got(want.size());
    make_kernels(isa).quantize_panel_q8_0(x.data(), got.data(), n);
    EXPECT_EQ(got, want) << isa_name(isa);
  }
}

// Q8_K: the first element of largest magnitude sets the scale (ties by sign), q = min(127, ...)
// and the 16-element sums; zero blocks stay zero.
TEST(Quantize, Q8_KVariantsBitExact) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(256 * 5);
  for (float& v : x) v = normal(rng);
  x[17] = 9.0f;  // block 0: +max first, then -max
  x[200] = -9.0f;
  x[256 + 3] = -9.0f;  // block 1: -max first
  x[256 + 100] = 9.0f;
  for (int j = 512; j < 768; ++j) x[j] = 0.0f;
  for (int j = 768; j < 1024; ++j) x[j] = (j % 2 ? 0.5f : -0.5f) * static_cast<float>(j % 7);  // ties
  std::vector<uint8_t> want(gguf::row_bytes(TensorType::Q8_K, static_cast<int64_t>(x.size())));
  quantize_row_q8_K_ref(x.data(), want.data(), static_cast<int64_t>(x.size()));
  const auto* b0 = reinterpret_cast<const quant::BlockQ8_K*>(want.data());
  EXPECT_EQ(b0[0].qs[17], -127);  // iscale = -127 / max with max = +9
  EXPECT_EQ(b0[1].qs[3], -127);
  for (Isa isa : test::available_isas()) {
    std::vector<uint8_t> got(want.size());
    make_kernels(isa).quantize_q8_K(x.data(), got.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(got, want) << isa_name(isa);
  }
}

// f32 -> f16 / bf16 activation rows: every variant bit-exact with the reference over ties,
// subnormals, overflow, infinities and NaN, with an odd tail.
TEST(Quantize, HalfVariantsBitExact) {
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(16 * 9 + 5);
  for (float& v : x) v = normal(rng);
  const float specials[] = {0.0f, -0.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
                            65504.0f, 65520.0f, 1e6f, -1e6f, 3e-8f, -6e-6f, 1e-40f, 0x1p-25f,
                            INFINITY, -INFINITY, NAN, -NAN};
  for (size_t i = 0; i < std::size(specials); ++i) x[i] = specials[i];
  for (size_t i = 32; i < 48; ++i) x[i] *= 1e-6f;
  for (TensorType act : {TensorType::F16, TensorType::BF16}) {
    const Kernels ref = make_kernels(Isa::kScalar);
    std::vector<uint8_t> want(gguf::row_bytes(act, static_cast<int64_t>(x.size())));
    activation_quantizer(ref, act)(x.data(), want.data(), static_cast<int64_t>(x.size()));
    uint16_t h;
    std::memcpy(&h, want.data() + 2 * 2, 2);
    EXPECT_EQ(h, act == TensorType::F16 ? 0x3c00 : 0x3f80);  // 1 + half an ulp: tie to even
    std::memcpy(&h, want.data() + 2 * (act == TensorType::F16 ? 3 : 5), 2);
    EXPECT_EQ(h, act == TensorType::F16 ? 0x3c02 : 0x3f82);  // 1 + 1.5 ulp: tie to even, up
    for (Isa isa : test::available_isas()) {
      std::vector<uint8_t> got(want.size());
      activation_quantizer(make_kernels(isa), act)(x.data(), got.data(), static_cast<int64_t>(x.size()));
      EXPECT_EQ(got, want) << isa_name(isa) << " " << gguf::type_info(act).name;
    }
  }
}

}  // namespace
}  // namespace owl::kernels
