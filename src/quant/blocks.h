// Block layouts of the quantized formats, byte-compatible with ggml (ggml-common.h).
// A row of n elements is n / kBlockSize consecutive blocks. Scales d/dmin are IEEE half.
#pragma once

#include <cstdint>

#include "gguf/tensor_type.h"

namespace owl::quant {

using gguf::kQK;    // elements per block, 32-element formats
using gguf::kQK_K;  // elements per super-block, K-quants
inline constexpr int kScaleBytesK = 12;  // packed 6-bit scales/mins of Q4_K and Q5_K

// x = d * (q - 8), q in [0, 15]; qs[j] low nibble is element j, high nibble element j + 16.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// x = d * q + m, q in [0, 15]; nibble order as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// x = d * (q - 16), q 5 bits: low 4 in qs (as Q4_0), bit 4 of element j in bit j of qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * q + m, 5-bit q laid out as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * q, q int8.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// As Q8_0 plus s = d * sum(q), used for activations against Q4_1/Q5_1.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};

// 16 sub-blocks of 16: x = d * (scales[i] & 0xF) * q - dmin * (scales[i] >> 4), q 2 bits.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
// 16 sub-blocks of 16: x = d * (s6 - 32) * (q - 4 * !hbit), q low 2 bits in qs, high bit in hmask.
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];  // 16 6-bit scales
  uint16_t d;
};
// 8 sub-blocks of 32: x = d * sc * q - dmin * m, 6-bit sc/m packed in scales, q 4 bits.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kScaleBytesK];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K with a fifth bit per element in qh.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kScaleBytesK];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16: x = d * scales[i] * (q - 32), q 6 bits: low 4 in ql, high 2 in qh.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
// Activation format for K-quant dot products: float scale, int8 q, sums of 16-element groups.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

// Each struct is exactly the bytes per block of gguf's size table.
template <typename Block>
constexpr bool is_block_of(gguf::TensorType type) {
  return static_cast<int64_t>(sizeof(Block)) == gguf::block_bytes(type);
}
static_assert(is_block_of<BlockQ4_0>(gguf::TensorType::Q4_0));
static_assert(is_block_of<BlockQ4_1>(gguf::TensorType::Q4_1));
static_assert(is_block_of<BlockQ5_0>(gguf::TensorType::Q5_0));
static_assert(is_block_of<BlockQ5_1>(gguf::TensorType::Q5_1));
static_assert(is_block_of<BlockQ8_0>(gguf::TensorType::Q8_0));
static_assert(is_block_of<BlockQ8_1>(gguf::TensorType::Q8_1));
static_assert(is_block_of<BlockQ2_K>(gguf::TensorType::Q2_K));
static_assert(is_block_of<BlockQ3_K>(gguf::TensorType::Q3_K));
static_assert(is_block_of<BlockQ4_K>(gguf::TensorType::Q4_K));
static_assert(is_block_of<BlockQ5_K>(gguf::TensorType::Q5_K));
static_assert(is_block_of<BlockQ6_K>(gguf::TensorType::Q6_K));
static_assert(is_block_of<BlockQ8_K>(gguf::TensorType::Q8_K));

}  // namespace owl::quant
