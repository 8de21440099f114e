// Quantize -> dequantize round trips of every format on seeded random rows with an odd number
// of blocks: Gaussian rows, all-zero rows, rows with one huge outlier, tiny (1e-30) and large
// (1e4) scales. The error budget comes from the format's bit width (error_budget.h); a check
// that decodes the bytes as a different format shows the budget catches a wrong decoder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "error_budget.h"
#include "quant/quant.h"

namespace owl::quant {
namespace {

using gguf::TensorType;
using testing::relative_rmse;
using testing::relative_rmse_budget;

constexpr int kBlocks = 7;  // odd, so that no loop may assume pairs of blocks

struct Format {
  TensorType type;
  TensorType confusable;  // a different format whose decoder must not pass this one's budget
};

const Format kFormats[] = {
    {TensorType::F32, TensorType::BF16},  {TensorType::F16, TensorType::BF16},
    {TensorType::BF16, TensorType::F16},  {TensorType::Q4_0, TensorType::Q5_0},
    {TensorType::Q4_1, TensorType::Q5_1}, {TensorType::Q5_0, TensorType::Q4_0},
    {TensorType::Q5_1, TensorType::Q4_1}, {TensorType::Q8_0, TensorType::Q8_1},
    {TensorType::Q8_1, TensorType::Q8_0}, {TensorType::Q2_K, TensorType::Q3_K},
    {TensorType::Q3_K, TensorType::Q2_K}, {TensorType::Q4_K, TensorType::Q5_K},
    {TensorType::Q5_K, TensorType::Q4_K}, {TensorType::Q6_K, TensorType::Q4_K},
    {TensorType::Q8_K, TensorType::Q6_K},
};

void PrintTo(const Format& f, std::ostream* os) {
  *os << gguf::type_info(f.type).name << " (confusable " << gguf::type_info(f.confusable).name << ")";
}

int64_t row_length(TensorType type) {
  const int64_t block = gguf::type_info(type).block_size;
  return block == 1 ? 32 * kBlocks + 1 : block * kBlocks;
}

std::vector<float> gaussian_row(int64_t n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(rng);
  return x;
}

// Quantizes x as `type` and decodes the bytes as `decode_as` (normally the same type).
std::vector<float> round_trip(TensorType type, const std::vector<float>& x, TensorType decode_as) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> bytes(static_cast<size_t>(std::max(gguf::row_bytes(type, n), gguf::row_bytes(decode_as, n))));
  EXPECT_TRUE(quantize_row(type, x.data(), bytes.data(), n));
  std::vector<float> y(x.size());
  EXPECT_TRUE(dequantize_row(decode_as, bytes.data(), y.data(), n));
  return y;
}

bool all_finite(const std::vector<float>& y) {
  for (float v : y) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

class RoundTrip : public ::testing::TestWithParam<Format> {};

TEST_P(RoundTrip, GaussianRowsStayWithinBudget) {
  const TensorType type = GetParam().type;
  const int64_t n = row_length(type);
  for (uint32_t seed : {1u, 2u, 3u}) {
    const std::vector<float> x = gaussian_row(n, 1.0f, seed);
    const std::vector<float> y = round_trip(type, x, type);
    EXPECT_LE(relative_rmse(x.data(), y.data(), n), relative_rmse_budget(type)) << "seed " << seed;
  }
}

TEST_P(RoundTrip, LargeScaleStaysWithinBudget) {
  const TensorType type = GetParam().type;
  const int64_t n = row_length(type);
  const std::vector<float> x = gaussian_row(n, 1e4f, 7);  // |x| up to ~4e4 < F16 max 65504
  const std::vector<float> y = round_trip(type, x, type);
  ASSERT_TRUE(all_finite(y));
  EXPECT_LE(relative_rmse(x.data(), y.data(), n), relative_rmse_budget(type));
}

// 1e-30 is below the smallest F16 scale: formats with F16 scales decode to zeros (never to
// inf or nan); formats with float scales or elements keep their budget.
TEST_P(RoundTrip, TinyScaleDecodesToFiniteValuesNoLargerThanTheData) {
  const TensorType type = GetParam().type;
  const int64_t n = row_length(type);
  const std::vector<float> x = gaussian_row(n, 1e-30f, 8);
  const std::vector<float> y = round_trip(type, x, type);
  ASSERT_TRUE(all_finite(y));
  const double rel = relative_rmse(x.data(), y.data(), n);
  if (type == TensorType::F32 || type == TensorType::BF16 || type == TensorType::Q8_K) {
    EXPECT_LE(rel, relative_rmse_budget(type));
  } else {
    EXPECT_LE(rel, 1.0);
  }
}

TEST_P(RoundTrip, AllZeroRowDecodesToZeros) {
  const TensorType type = GetParam().type;
  const std::vector<float> x(static_cast<size_t>(row_length(type)), 0.0f);
  const std::vector<float> y = round_trip(type, x, type);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], 0.0f) << "element " << i;
}

// One element 1000 sigma out: its own value survives within the format's relative budget and
// the blocks that do not hold it keep theirs.
TEST_P(RoundTrip, OutlierStaysInItsBlock) {
  const TensorType type = GetParam().type;
  const int64_t n = row_length(type);
  const int64_t block = std::max<int64_t>(gguf::type_info(type).block_size, 1);
  for (uint32_t seed : {11u, 12u}) {
    std::vector<float> x = gaussian_row(n, 1.0f, seed);
    std::mt19937 rng(seed);
    const int64_t at = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
    x[static_cast<size_t>(at)] = seed % 2 ? 1000.0f : -1000.0f;
    const std::vector<float> y = round_trip(type, x, type);
    ASSERT_TRUE(all_finite(y));
    EXPECT_NEAR(y[at], x[at], 1000.0 * relative_rmse_budget(type)) << "outlier at " << at;
    std::vector<float> x_rest;
    std::vector<float> y_rest;
    for (int64_t i = 0; i < n; ++i) {
      if (i / block == at / block) continue;
      x_rest.push_back(x[i]);
      y_rest.push_back(y[i]);
    }
    EXPECT_LE(relative_rmse(x_rest.data(), y_rest.data(), static_cast<int64_t>(x_rest.size())),
              relative_rmse_budget(type))
        << "seed " << seed;
  }
}

// The budget is not one any output passes: decoding the bytes as another format fails it.
TEST_P(RoundTrip, WrongDecoderFailsTheBudget) {
  const Format f = GetParam();
  const int64_t n = row_length(f.type);
  ASSERT_EQ(n, row_length(f.confusable));
  const std::vector<float> x = gaussian_row(n, 1.0f, 21);
  const std::vector<float> y = round_trip(f.type, x, f.confusable);
  const double rel = relative_rmse(x.data(), y.data(), n);
  EXPECT_FALSE(rel <= 4 * relative_rmse_budget(f.type)) << rel;  // nan (a garbage F16 scale) fails too
}

TEST_P(RoundTrip, QuantizeIsDeterministic) {
  const TensorType type = GetParam().type;
  const int64_t n = row_length(type);
  const std::vector<float> x = gaussian_row(n, 0.02f, 31);
  std::vector<uint8_t> a(static_cast<size_t>(gguf::row_bytes(type, n)), 0x00);
  std::vector<uint8_t> b(a.size(), 0xff);  // different garbage: every byte must be written
  ASSERT_TRUE(quantize_row(type, x.data(), a.data(), n));
  ASSERT_TRUE(quantize_row(type, x.data(), b.data(), n));
  EXPECT_EQ(a, b);
}

std::string format_name(const ::testing::TestParamInfo<Format>& info) {
  return std::string(gguf::type_info(info.param.type).name);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, RoundTrip, ::testing::ValuesIn(kFormats), format_name);

TEST(QuantRegistry, RefusesIntegerTypes) {
  float x[4] = {1, 2, 3, 4};
  uint8_t bytes[32] = {};
  for (TensorType type : {TensorType::I8, TensorType::I16, TensorType::I32, TensorType::I64}) {
    EXPECT_FALSE(quantize_row(type, x, bytes, 4));
    EXPECT_FALSE(dequantize_row(type, bytes, x, 4));
  }
  EXPECT_FALSE(quantize_row(TensorType::F64, x, bytes, 4));
}

TEST(NearestInt, RoundsHalfToEvenLikeNearbyint) {
  EXPECT_EQ(nearest_int(0.5f), 0);
  EXPECT_EQ(nearest_int(1.5f), 2);
  EXPECT_EQ(nearest_int(2.5f), 2);
  EXPECT_EQ(nearest_int(-0.5f), 0);
  EXPECT_EQ(nearest_int(-1.5f), -2);
  EXPECT_EQ(nearest_int(-2.5f), -2);
  EXPECT_EQ(nearest_int(4194303.0f), 4194303);
  EXPECT_EQ(nearest_int(-4194303.0f), -4194303);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-300.0f, 300.0f);
  for (int i = 0; i < 100000; ++i) {
    const float v = dist(rng);
    ASSERT_EQ(nearest_int(v), static_cast<int>(std::nearbyint(v))) << v;
  }
}

// The scale packings, checked against the layout written out bit by bit.
TEST(ScalePacking, Q4KScaleMinAndQ3KScale) {
  uint8_t packed[12];
  std::mt19937 rng(17);
  for (int trial = 0; trial < 100; ++trial) {
    for (uint8_t& b : packed) b = static_cast<uint8_t>(rng());
    for (int j = 0; j < 8; ++j) {
      const ScaleMin sm = get_scale_min_k4(j, packed);
      if (j < 4) {
        EXPECT_EQ(sm.scale, packed[j] % 64);
        EXPECT_EQ(sm.min, packed[j + 4] % 64);
      } else {
        EXPECT_EQ(sm.scale, packed[j + 4] % 16 + 16 * (packed[j - 4] / 64));
        EXPECT_EQ(sm.min, packed[j + 4] / 16 + 16 * (packed[j] / 64));
      }
    }
    for (int j = 0; j < 16; ++j) {
      const int low = j < 8 ? packed[j] % 16 : packed[j - 8] / 16;
      const int high = (packed[8 + j % 4] >> (2 * (j / 4))) % 4;
      EXPECT_EQ(get_scale_q3_k(j, packed), low + 16 * high) << j;
    }
  }
}

}  // namespace
}  // namespace owl::quant
