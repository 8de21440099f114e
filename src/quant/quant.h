// Reference (scalar) quantize / dequantize for every GGUF tensor type owl reads.
// These define what each format means; SIMD kernels in kernels/ are tested against them.
// All functions take rows whose length n is a multiple of the type's block size.
//
// Quantizers are bit-identical to llama.cpp's quantize_row_<type>_ref (ggml/src/ggml-quants.c,
// no importance matrix): the bytes owl writes are the bytes llama-quantize writes for the
// same float input. Dequantizers give the same floats as ggml's dequantize_row_<type>.
#pragma once

#include <cstdint>
#include <cstring>

#include "gguf/tensor_type.h"
#include "quant/blocks.h"

namespace owl::quant {

// x -> bytes of `type`, identical to llama.cpp's quantize_row_<type>_ref (no importance matrix).
// F32/F16/BF16 are plain conversions. Returns false for types without a quantizer (I8..F64).
// Both look the type up in the format-traits table (traits.h).
bool quantize_row(gguf::TensorType type, const float* src, void* dst, int64_t n);

// bytes of `type` -> x, identical to llama.cpp's dequantize_row_<type>.
// Returns false for types without a float meaning (I8..I64).
bool dequantize_row(gguf::TensorType type, const void* src, float* dst, int64_t n);

// Activation quantizers used inside quantized dot products.
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n);

// Typed entry points of the weight formats (the format-traits table holds them).
// 32-element blocks: formats_32.cpp.
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n);
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n);
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n);
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n);
void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q8_1(const BlockQ8_1* x, float* y, int64_t n);
// 256-element super-blocks: kquants.cpp.
void quantize_row_q2_K(const float* x, BlockQ2_K* y, int64_t n);
void quantize_row_q3_K(const float* x, BlockQ3_K* y, int64_t n);
void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n);
void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n);
void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n);
void dequantize_row_q2_K(const BlockQ2_K* x, float* y, int64_t n);
void dequantize_row_q3_K(const BlockQ3_K* x, float* y, int64_t n);
void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n);
void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n);

// Round to nearest, ties to even, exactly as ggml's nearest_int: adding 1.5 * 2^23 leaves the
// rounded integer in the low mantissa bits. Exact for |x| < 2^22; beyond that (which the
// quantizers only reach on degenerate input) it wraps the same way ggml's does, so the bytes
// still match, and it never has undefined behaviour.
inline int nearest_int(float x) {
  const float shifted = x + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return (bits & 0x007fffff) - 0x00400000;
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
// Packing of the 12 bytes (ggml's get_scale_min_k4):
//   bytes 0..3   bits 0-5: scale j (j < 4)      bits 6-7: bits 4-5 of scale j+4
//   bytes 4..7   bits 0-5: min j   (j < 4)      bits 6-7: bits 4-5 of min j+4
//   bytes 8..11  bits 0-3: bits 0-3 of scale j+4, bits 4-7: bits 0-3 of min j+4
struct ScaleMin {
  uint8_t scale;
  uint8_t min;
};
inline ScaleMin get_scale_min_k4(int j, const uint8_t* packed) {
  if (j < 4) {
    return {static_cast<uint8_t>(packed[j] & 63), static_cast<uint8_t>(packed[j + 4] & 63)};
  }
  return {static_cast<uint8_t>((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4)),
          static_cast<uint8_t>((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4))};
}

// The 6-bit scale of sub-block j (0..15) of a Q3_K super-block, as stored (0..63; the
// multiplier is scale - 32). Bytes 0..7 hold the low 4 bits (sub-block j in the low nibble of
// byte j % 8 for j < 8, high nibble for j >= 8); bytes 8..11 hold the high 2 bits, sub-block j
// at bits 2 * (j / 4) of byte 8 + j % 4.
inline int get_scale_q3_k(int j, const uint8_t* packed) {
  const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
  const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | (high << 4);
}

}  // namespace owl::quant
