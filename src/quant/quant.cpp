// The one switch on weight format: quantize_row / dequantize_row dispatch on the GGUF type
// to the typed reference functions (formats_32.cpp, kquants.cpp, q8.cpp) and do the plain
// float conversions themselves.
#include <cstring>

#include "quant/half.h"
#include "quant/quant.h"

namespace owl::quant {

using gguf::TensorType;

bool quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return true;
    case TensorType::F16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16(src[i]);
      return true;
    }
    case TensorType::BF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(src[i]);
      return true;
    }
    case TensorType::Q4_0: quantize_row_q4_0(src, static_cast<BlockQ4_0*>(dst), n); return true;
    case TensorType::Q4_1: quantize_row_q4_1(src, static_cast<BlockQ4_1*>(dst), n); return true;
    case TensorType::Q5_0: quantize_row_q5_0(src, static_cast<BlockQ5_0*>(dst), n); return true;
    case TensorType::Q5_1: quantize_row_q5_1(src, static_cast<BlockQ5_1*>(dst), n); return true;
    case TensorType::Q8_0: quantize_row_q8_0(src, static_cast<BlockQ8_0*>(dst), n); return true;
    case TensorType::Q8_1: quantize_row_q8_1(src, static_cast<BlockQ8_1*>(dst), n); return true;
    case TensorType::Q2_K: quantize_row_q2_K(src, static_cast<BlockQ2_K*>(dst), n); return true;
    case TensorType::Q3_K: quantize_row_q3_K(src, static_cast<BlockQ3_K*>(dst), n); return true;
    case TensorType::Q4_K: quantize_row_q4_K(src, static_cast<BlockQ4_K*>(dst), n); return true;
    case TensorType::Q5_K: quantize_row_q5_K(src, static_cast<BlockQ5_K*>(dst), n); return true;
    case TensorType::Q6_K: quantize_row_q6_K(src, static_cast<BlockQ6_K*>(dst), n); return true;
    case TensorType::Q8_K: quantize_row_q8_K(src, static_cast<BlockQ8_K*>(dst), n); return true;
    case TensorType::I8:
    case TensorType::I16:
    case TensorType::I32:
    case TensorType::I64:
    case TensorType::F64:
      return false;
  }
  return false;
}

bool dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return true;
    case TensorType::F16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(in[i]);
      return true;
    }
    case TensorType::BF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(in[i]);
      return true;
    }
    case TensorType::F64: {  // narrowed to float, as ggml does
      const auto* in = static_cast<const double*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(in[i]);
      return true;
    }
    case TensorType::Q4_0: dequantize_row_q4_0(static_cast<const BlockQ4_0*>(src), dst, n); return true;
    case TensorType::Q4_1: dequantize_row_q4_1(static_cast<const BlockQ4_1*>(src), dst, n); return true;
    case TensorType::Q5_0: dequantize_row_q5_0(static_cast<const BlockQ5_0*>(src), dst, n); return true;
    case TensorType::Q5_1: dequantize_row_q5_1(static_cast<const BlockQ5_1*>(src), dst, n); return true;
    case TensorType::Q8_0: dequantize_row_q8_0(static_cast<const BlockQ8_0*>(src), dst, n); return true;
    case TensorType::Q8_1: dequantize_row_q8_1(static_cast<const BlockQ8_1*>(src), dst, n); return true;
    case TensorType::Q2_K: dequantize_row_q2_K(static_cast<const BlockQ2_K*>(src), dst, n); return true;
    case TensorType::Q3_K: dequantize_row_q3_K(static_cast<const BlockQ3_K*>(src), dst, n); return true;
    case TensorType::Q4_K: dequantize_row_q4_K(static_cast<const BlockQ4_K*>(src), dst, n); return true;
    case TensorType::Q5_K: dequantize_row_q5_K(static_cast<const BlockQ5_K*>(src), dst, n); return true;
    case TensorType::Q6_K: dequantize_row_q6_K(static_cast<const BlockQ6_K*>(src), dst, n); return true;
    case TensorType::Q8_K: dequantize_row_q8_K(static_cast<const BlockQ8_K*>(src), dst, n); return true;
    case TensorType::I8:
    case TensorType::I16:
    case TensorType::I32:
    case TensorType::I64:
      return false;
  }
  return false;
}

}  // namespace owl::quant
