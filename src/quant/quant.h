// Reference (scalar) quantize / dequantize for every GGUF tensor type owl reads.
// These define what each format means; SIMD kernels in kernels/ are tested against them.
// All functions take rows whose length n is a multiple of the type's block size.
#pragma once

#include <cstdint>

#include "gguf/tensor_type.h"
#include "quant/blocks.h"

namespace owl::quant {

// x -> bytes of `type`, identical to llama.cpp's quantize_row_<type>_ref (no importance matrix).
// F32/F16/BF16 are plain conversions. Returns false for types without a quantizer (I8..F64).
bool quantize_row(gguf::TensorType type, const float* src, void* dst, int64_t n);

// bytes of `type` -> x, identical to llama.cpp's dequantize_row_<type>.
// Returns false for types without a float meaning (I8..I64).
bool dequantize_row(gguf::TensorType type, const void* src, float* dst, int64_t n);

// Activation quantizers used inside quantized dot products.
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n);

}  // namespace owl::quant
