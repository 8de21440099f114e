// The weight quantizers of the kernel table (owl quantize's) against the reference quantizers
// (llama.cpp's quantize_row_<type>_ref): the same bytes on every ISA for rows that reach every
// branch: random values at many magnitudes, ties for the largest magnitude, halves that round
// both ways, all-zero blocks and sub-blocks, signed zeros, subnormals, infinities and NaNs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

namespace owl::kernels {
namespace {

using gguf::TensorType;

constexpr int64_t kRow = 4352;  // 17 K-quant super-blocks (an odd one left for the pairs), 136 Q4_0 / Q8_0 blocks

// One row of a kind: each 256-element stretch gets its own pattern.
std::vector<float> make_row(int kind, std::mt19937& rng) {
  std::vector<float> x(kRow);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-16, 16);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t s = 0; s < kRow; s += 256) {
    const int pattern = (kind + static_cast<int>(s / 256)) % 9;
    const float magnitude = std::ldexp(1.0f, static_cast<int>(s / 256) * 7 % 60 - 30);
    for (int64_t i = s; i < s + 256; ++i) {
      switch (pattern) {
        case 0: x[i] = normal(rng) * magnitude; break;
        case 1: x[i] = static_cast<float>(small(rng)) * 0.25f; break;  // ties and exact halves
        case 2: x[i] = (i % 32 < 16) ? 0.0f : normal(rng); break;      // zero half-blocks, zero sub-blocks
        case 3: x[i] = (i % 2 ? -1.0f : 1.0f) * (i % 5 == 0 ? 3.0f : 1.5f); break;  // +-max ties
        case 4: x[i] = (i % 3 == 0 ? -0.0f : 0.0f); break;              // signed zeros only
        case 5: x[i] = normal(rng) * 1e-40f; break;                     // subnormals
        case 6: x[i] = (i % 97 == 5) ? (i % 2 ? inf : -inf) : normal(rng); break;
        case 7: x[i] = (i % 89 == 7) ? std::numeric_limits<float>::quiet_NaN() : normal(rng); break;
        default: x[i] = normal(rng) * 1e-16f; break;  // below the K-quants' all-zero threshold
      }
    }
  }
  return x;
}

TEST(QuantizeWeights, EveryVariantWritesTheReferenceBytes) {
  const Kernels ref = make_kernels(Isa::kScalar);
  std::mt19937 rng(7);
  int checked = 0;
  for (Isa isa : test::available_isas()) {
    const Kernels k = make_kernels(isa);
    for (const TensorType type : {TensorType::Q4_0, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
      ASSERT_NE(k.quantize_weights[static_cast<uint32_t>(type)], nullptr) << gguf::type_info(type).name;
      for (int kind = 0; kind < 9; ++kind) {
        const std::vector<float> x = make_row(kind, rng);
        const size_t bytes = static_cast<size_t>(gguf::row_bytes(type, kRow));
        std::vector<uint8_t> want(bytes, 0xAA);
        std::vector<uint8_t> got(bytes, 0x55);
        ASSERT_TRUE(quant::quantize_row(type, x.data(), want.data(), kRow));
        ASSERT_TRUE(quantize_weight_row(k, type, x.data(), got.data(), kRow));
        for (size_t i = 0; i < bytes; ++i) {
          ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " " << gguf::type_info(type).name << " kind " << kind << " byte " << i;
        }
        // The scalar table is the reference itself.
        std::vector<uint8_t> scalar(bytes);
        ref.quantize_weights[static_cast<uint32_t>(type)](x.data(), scalar.data(), kRow);
        ASSERT_EQ(scalar, want);
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 45);
}

// Types without a variant go to the reference; types without a quantizer say so.
TEST(QuantizeWeights, OtherTypesFallBackToTheReference) {
  const Kernels k = make_kernels();
  std::mt19937 rng(3);
  const std::vector<float> x = make_row(0, rng);
  for (const TensorType type : {TensorType::Q3_K, TensorType::Q5_1, TensorType::F16}) {
    const size_t bytes = static_cast<size_t>(gguf::row_bytes(type, kRow));
    std::vector<uint8_t> want(bytes), got(bytes);
    ASSERT_TRUE(quant::quantize_row(type, x.data(), want.data(), kRow));
    ASSERT_TRUE(quantize_weight_row(k, type, x.data(), got.data(), kRow));
    EXPECT_EQ(got, want) << gguf::type_info(type).name;
  }
  std::vector<uint8_t> sink(kRow * 8);
  EXPECT_FALSE(quantize_weight_row(k, TensorType::I32, x.data(), sink.data(), kRow));
}

}  // namespace
}  // namespace owl::kernels
