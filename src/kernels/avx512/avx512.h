// Internal: the AVX-512 variants (compiled with -mavx512f/bw/dq/vl/vnni/bf16 -mfma -mf16c).
// Call only when cpu_features reports avx512 (and avx512_vnni: owl requires both together).
#pragma once

#include <type_traits>
#include <utility>

#include "kernels/kernels.h"

namespace owl::kernels {

// f(integral_constant N) for the runtime n in [1, Max].
template <int Max, typename F>
inline void with_count(int n, F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((n == I + 1 ? (f(std::integral_constant<int, I + 1>{}), 0) : 0), ...);
  }(std::make_integer_sequence<int, Max>{});
}

void dot_f32_f32_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_f16_f16_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_bf16_bf16_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);  // AVX512_BF16
void dot_q4_0_q8_0_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_1_q8_1_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_0_q8_0_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_1_q8_1_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q8_0_q8_0_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q4_K_q8_K_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q5_K_q8_K_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);
void dot_q6_K_q8_K_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y);

void tile_f16_f16_avx512(const TileArgs& t);
void tile_bf16_bf16_avx512(const TileArgs& t);  // AVX512_BF16
void tile_q4_0_q8_0_avx512(const TileArgs& t);
void tile_q8_0_q8_0_avx512(const TileArgs& t);
void tile_q4_K_q8_K_avx512(const TileArgs& t);
void panel_q4_0_q8_0_avx512(const TileArgs& t);  // Q8_0 activations as panel rows (DotKernel::panel)
void panel_q8_0_q8_0_avx512(const TileArgs& t);
void panel_q4_K_q8_K_avx512(const TileArgs& t);  // Q8_K activations as they are
void panel_q6_K_q8_K_avx512(const TileArgs& t);
void panel_f16_f16_avx512(const TileArgs& t);    // F16 activations as they are
void panel_bf16_bf16_avx512(const TileArgs& t);  // BF16 activations as they are
void packed_rows_q4_0_q8_0_avx512(const TileArgs& t);   // the packed layout (DotKernel::packed_rows)
void packed_panel_q4_0_q8_0_avx512(const TileArgs& t);  // the packed layout (DotKernel::packed_panel)
void pack_q4_0_avx512(const void* w, int64_t n_out, int64_t n_in, void* out);  // DotKernel::pack

void quantize_row_q8_0_avx512(const float* x, void* y, int64_t n);
void quantize_row_panel_q8_0_avx512(const float* x, void* y, int64_t n);
void quantize_row_q8_K_avx512(const float* x, void* y, int64_t n);
void quantize_row_f16_avx512(const float* x, void* y, int64_t n);
void widen_row_f16_avx512(const void* x, float* y, int64_t n);
void widen_row_bf16_avx512(const void* x, float* y, int64_t n);
void quantize_row_bf16_avx512(const float* x, void* y, int64_t n);
void rms_norm_avx512(const float* x, const float* w, float* y, int64_t n, float eps);
void softmax_avx512(float* x, int64_t n, float scale, const float* mask);
void silu_avx512(const float* x, float* y, int64_t n);
void swiglu_avx512(const float* gate, const float* up, float* y, int64_t n);
void axpy_rows_avx512(float* y, int64_t n, const float* c, const float* w, int64_t w_stride, int64_t k);
void attention_group_avx512(const AttentionArgs& a, int64_t t, int kv_head);

}  // namespace owl::kernels
