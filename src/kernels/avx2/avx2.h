// Internal: the AVX2 variants (compiled with -mavx2 -mfma -mf16c).
// Call only when cpu_features reports avx2.
#pragma once

#include "kernels/kernels.h"

namespace owl::kernels {

void dot_f32_f32_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_f16_f16_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_bf16_bf16_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_0_q8_0_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_1_q8_1_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_0_q8_0_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_1_q8_1_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_K_q8_K_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_K_q8_K_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q6_K_q8_K_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);

void quantize_row_q8_0_avx2(const float* x, void* y, int64_t n);
void quantize_row_f16_avx2(const float* x, void* y, int64_t n);
void widen_row_f16_avx2(const void* x, float* y, int64_t n);
void widen_row_bf16_avx2(const void* x, float* y, int64_t n);
void quantize_row_bf16_avx2(const float* x, void* y, int64_t n);
void rms_norm_avx2(const float* x, const float* w, float* y, int64_t n, float eps);
void softmax_avx2(float* x, int64_t n, float scale, const float* mask);
void silu_avx2(const float* x, float* y, int64_t n);
void swiglu_avx2(const float* gate, const float* up, float* y, int64_t n);
void axpy_rows_avx2(float* y, int64_t n, const float* c, const float* w, int64_t w_stride, int64_t k);
void attention_group_avx2(const AttentionArgs& a, int64_t t, int kv_head);

}  // namespace owl::kernels
