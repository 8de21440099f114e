// Scalar reference kernels: plain loops that define what every SIMD variant must compute.
// Signatures are those of the table entries in kernels/kernels.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace owl::kernels {

// ---- dot products: y[r] = dot(w, x_r), weights in <wtype>, activations in <atype> ----------
void dot_f32_f32_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_f16_f16_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_bf16_bf16_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_0_q8_0_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_1_q8_1_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_0_q8_0_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_1_q8_1_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q8_0_q8_0_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q2_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q3_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q6_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q8_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);

// ---- activation quantizers (llama.cpp's x86 rounding: q = round_half_even(x * 127 / amax)) --
void quantize_row_q8_0_ref(const float* x, void* y, int64_t n);
// The weight quantizers' references: quant::quantize_row_<type> (llama.cpp's *_ref).
void quantize_weight_q4_0_ref(const float* x, void* y, int64_t n);
void quantize_weight_q8_0_ref(const float* x, void* y, int64_t n);
void quantize_weight_q4_K_ref(const float* x, void* y, int64_t n);
void quantize_weight_q5_K_ref(const float* x, void* y, int64_t n);
void quantize_weight_q6_K_ref(const float* x, void* y, int64_t n);
void quantize_row_q8_1_ref(const float* x, void* y, int64_t n);
void quantize_row_q8_K_ref(const float* x, void* y, int64_t n);
// Q8_0 as a panel row (kernels.h, panel_q8_0_row_bytes): the n values q + 128 as unsigned
// bytes, then the n / 32 scales d (f16-rounded, as Q8_0 stores them) as f32.
void quantize_row_panel_q8_0_ref(const float* x, void* y, int64_t n);
// f32 -> f16 / bf16 element-wise, round to nearest even (quant/half.h), as ggml's
// GGML_FP32_TO_FP16 (F16C) and ggml_compute_fp32_to_bf16.
void quantize_row_f16_ref(const float* x, void* y, int64_t n);
void widen_row_f16_ref(const void* x, float* y, int64_t n);
void widen_row_bf16_ref(const void* x, float* y, int64_t n);
void quantize_row_bf16_ref(const float* x, void* y, int64_t n);

// ---- element-wise and row ops --------------------------------------------------------------
void rms_norm_ref(const float* x, const float* w, float* y, int64_t n, float eps);
void softmax_ref(float* x, int64_t n, float scale, const float* mask);
void rope_ref(const RopeParams& p, float* x, int64_t n_tokens, const int32_t* pos);
void silu_ref(const float* x, float* y, int64_t n);
void gelu_ref(const float* x, float* y, int64_t n);
void swiglu_ref(const float* gate, const float* up, float* y, int64_t n);
void geglu_ref(const float* gate, const float* up, float* y, int64_t n);
void axpy_rows_ref(float* y, int64_t n, const float* c, const float* w, int64_t w_stride, int64_t k);
void attention_group_ref(const AttentionArgs& a, int64_t t, int kv_head);

// Scalar helpers shared by the SIMD variants' tails and set-up code.
float gelu_f16_ref(float x);  // one element of gelu_ref
// Decodes the 6-bit scales and mins of a Q4_K/Q5_K super-block: sc[8], m[8].
void unpack_scales_k4(const uint8_t* packed, uint8_t* sc, uint8_t* m);
// Decodes the 16 6-bit scales of a Q3_K super-block as signed values (s6 - 32).
void unpack_scales_q3_K(const uint8_t* packed, int8_t* sc);
// Whether key j is visible to token t, and its additive mask value (AttentionArgs rules).
bool attention_visible(const AttentionArgs& a, int64_t t, int64_t j, float* mask_value);

}  // namespace owl::kernels
