// Importance-weighted quantizers, used when an importance matrix (owl imatrix) is given: the
// fit of every block minimizes sum_i w_i (x_i - q_i)^2 with w_i = importance_i *
// sqrt(sigma^2 + x_i^2), sigma^2 the block's mean square (llama.cpp's weighting in
// ggml-quants.c quantize_row_*_impl). The searches are owl's; the bytes are ordinary blocks of
// the type, read by every dequantizer.
#pragma once

#include <cstdint>

#include "gguf/tensor_type.h"

namespace owl::quant {

// x [n] -> bytes of `type`, weighted by importance [n] (one value per column of the row).
// Returns false for a type without a weighted variant (the caller uses quantize_row).
bool quantize_row_weighted(gguf::TensorType type, const float* x, void* dst, int64_t n, const float* importance);

}  // namespace owl::quant
