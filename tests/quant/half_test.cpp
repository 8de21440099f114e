// half.h against the hardware: F16C's vcvtph2ps / vcvtps2ph (round to nearest even) define the
// IEEE conversions; bfloat16 is checked against a rounding written out in integers.
// This file is compiled with -mf16c and skips itself on a CPU without F16C.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "quant/half.h"

namespace owl::quant {
namespace {

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

bool cpu_has_f16c() { return __builtin_cpu_supports("f16c"); }

uint16_t hw_f32_to_f16(float x) { return static_cast<uint16_t>(_cvtss_sh(x, 0)); }  // 0: nearest even
float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

TEST(Half, F16ToF32MatchesF16cForAllBitPatterns) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "no F16C";
  int mismatches = 0;
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint32_t ours = bits_of(f16_to_f32(static_cast<uint16_t>(h)));
    const uint32_t hw = bits_of(hw_f16_to_f32(static_cast<uint16_t>(h)));
    if (ours != hw && ++mismatches <= 5) ADD_FAILURE() << std::hex << "h=0x" << h << " ours 0x" << ours << " f16c 0x" << hw;
  }
  EXPECT_EQ(mismatches, 0);
}

void expect_f32_to_f16_matches(const std::vector<uint32_t>& patterns) {
  int mismatches = 0;
  for (uint32_t b : patterns) {
    const float x = from_bits(b);
    const uint16_t ours = f32_to_f16(x);
    const uint16_t hw = hw_f32_to_f16(x);
    if (ours != hw && ++mismatches <= 5) {
      ADD_FAILURE() << std::hex << "x bits 0x" << b << " (" << x << ") ours 0x" << ours << " f16c 0x" << hw;
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << patterns.size();
}

TEST(Half, F32ToF16MatchesF16cOnTiesAndNeighbours) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "no F16C";
  // For every pair of adjacent halves (normal and subnormal, both signs), the float exactly
  // half way between them and its two float neighbours: every rounding tie there is.
  std::vector<uint32_t> patterns;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const double lo = hw_f16_to_f32(static_cast<uint16_t>(h));
    const double hi = h + 1 == 0x7c00 ? 65536.0 : hw_f16_to_f32(static_cast<uint16_t>(h + 1));
    const uint32_t mid = bits_of(static_cast<float>((lo + hi) / 2));  // exact in float
    for (uint32_t sign : {0u, 0x80000000u}) {
      for (uint32_t b : {mid - 1, mid, mid + 1}) patterns.push_back(sign | b);
    }
  }
  expect_f32_to_f16_matches(patterns);
}

TEST(Half, F32ToF16MatchesF16cOnEdgesAndRandomFloats) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "no F16C";
  std::vector<uint32_t> patterns = {
      0x00000000, 0x80000000, 0x00000001, 0x007fffff, 0x00800000,  // zeros, f32 subnormals
      0x33000000, 0x33000001, 0x32ffffff,                          // half the smallest f16 subnormal
      0x387fc000, 0x38800000, 0x387fffff,                          // f16 subnormal / normal boundary
      0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff, 0x47800000,  // 65504, rounding up to inf
      0x7f7fffff, 0x7f800000, 0xff800000,                          // FLT_MAX, infinities
      0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0x7fffffff,  // quiet and signalling NaNs
      0x7f802000, 0xff8fe000,                                      // NaNs with payload in the kept bits
  };
  std::mt19937 rng(1234);
  for (int i = 0; i < 2'000'000; ++i) patterns.push_back(rng());
  // Floats in the range of halves, where the mantissa rounding happens.
  std::uniform_real_distribution<float> in_range(-70000.0f, 70000.0f);
  std::uniform_real_distribution<float> small(-1e-4f, 1e-4f);
  for (int i = 0; i < 500'000; ++i) {
    patterns.push_back(bits_of(in_range(rng)));
    patterns.push_back(bits_of(small(rng)));
  }
  expect_f32_to_f16_matches(patterns);
}

// bfloat16 round to nearest even, written with integer arithmetic on the dropped 16 bits.
uint16_t reference_bf16(uint32_t x) {
  const uint32_t kept = x >> 16;
  const uint32_t dropped = x & 0xffff;
  if (dropped > 0x8000 || (dropped == 0x8000 && (kept & 1))) return static_cast<uint16_t>(kept + 1);
  return static_cast<uint16_t>(kept);
}

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie, even below
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000)), 0x3f82);  // tie, odd below: up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001)), 0x3f81);  // just above a tie
  EXPECT_EQ(f32_to_bf16(from_bits(0xbf818000)), 0xbf82);  // negative tie goes away from zero to even
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to infinity
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000)), 0x0000);  // subnormal tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000)), 0x0002);
  std::mt19937 rng(99);
  int mismatches = 0;
  for (int i = 0; i < 2'000'000; ++i) {
    uint32_t x = rng();
    if ((x & 0x7fffffff) > 0x7f800000) continue;  // NaN: below
    if (i % 4 == 0) x = (x & 0xffff0000u) | 0x8000u;  // force ties
    if (f32_to_bf16(from_bits(x)) != reference_bf16(x) && ++mismatches <= 5) ADD_FAILURE() << std::hex << x;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Half, Bf16KeepsNanANanAndRoundTripsExactly) {
  for (uint32_t nan : {0x7f800001u, 0x7fc00000u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu}) {
    const uint16_t h = f32_to_bf16(from_bits(nan));
    EXPECT_TRUE(std::isnan(bf16_to_f32(h))) << std::hex << nan << " -> " << h;
    EXPECT_EQ(h & 0x8000, (nan >> 16) & 0x8000) << "sign";
  }
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    EXPECT_EQ(bits_of(f), h << 16);
    if (!std::isnan(f)) {
      EXPECT_EQ(f32_to_bf16(f), h);
    }
  }
}

}  // namespace
}  // namespace owl::quant
