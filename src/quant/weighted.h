// Importance-weighted quantizers, used when an importance matrix (owl imatrix) is given: the
// fit of every block minimizes sum_i w_i (x_i - q_i)^2 with w_i = importance_i *
// sqrt(sigma^2 + x_i^2), sigma^2 the block's mean square (llama.cpp's weighting in
// ggml-quants.c quantize_row_*_impl). The searches are owl's; the bytes are ordinary blocks of
// the type, read by every dequantizer.
#pragma once

#include <cstdint>

#include "gguf/tensor_type.h"
#include "quant/blocks.h"

namespace owl::quant {

// x [n] -> bytes of `type`, weighted by importance [n] (one value per column of the row).
// Returns false for a type without a weighted variant (the caller uses quantize_row).
bool quantize_row_weighted(gguf::TensorType type, const float* x, void* dst, int64_t n, const float* importance);

namespace detail {

// One block fitted to x [block size] under the weights w [block size]; the entries of the
// format-traits table (traits.cpp).
void weighted_block_q4_0(const float* x, const float* w, BlockQ4_0& y);
void weighted_block_q4_1(const float* x, const float* w, BlockQ4_1& y);
void weighted_block_q5_0(const float* x, const float* w, BlockQ5_0& y);
void weighted_block_q5_1(const float* x, const float* w, BlockQ5_1& y);
void weighted_block_q2_k(const float* x, const float* w, BlockQ2_K& y);
void weighted_block_q3_k(const float* x, const float* w, BlockQ3_K& y);
void weighted_block_q4_k(const float* x, const float* w, BlockQ4_K& y);
void weighted_block_q5_k(const float* x, const float* w, BlockQ5_K& y);
void weighted_block_q6_k(const float* x, const float* w, BlockQ6_K& y);

}  // namespace detail

}  // namespace owl::quant
