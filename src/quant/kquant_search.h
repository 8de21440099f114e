// Scale searches of the K-quant reference quantizers (internal to owl_quant).
// Each fits the quants of one sub-block of n elements and returns its scale; they are
// llama.cpp's make_qx_quants / make_q3_quants / make_qkx2_quants (ggml/src/ggml-quants.c)
// restricted to the arguments the *_ref quantizers pass, with the same float operation order
// so that the chosen quants, and so the bytes, are identical.
#pragma once

#include <cstdint>

#include "quant/blocks.h"

namespace owl::quant::detail {

// Below this magnitude a sub-block counts as all zero (ggml's GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// Symmetric fit x ~ scale * (L - nmax), L in [0, 2 * nmax), weights x^2 (ggml's
// make_qx_quants with rmse_type 1 and no importance). Tries inverse scales
// -(nmax + 0.1 * k) / max for k in [-9, 9] and keeps the best weighted least-squares scale.
// An all-zero sub-block gives scale 0 and L = 0.
float fit_symmetric_rmse(int n, int nmax, const float* x, int8_t* L);

// Symmetric fit for Q3_K (ggml's make_q3_quants with do_rmse): starts from x / (max / -nmax)
// and then moves single quants while that lowers the x^2-weighted error, at most 5 passes.
// L in [0, 2 * nmax), meaning L - nmax; an all-zero sub-block gives scale 0 and L = 0.
float fit_symmetric_q3(int n, int nmax, const float* x, int8_t* L);

// Where fit_scale_and_min looks: inverse scales (rmin + rdelta * k + nmax) / (max - min),
// k = 0..nstep.
struct ScaleGrid {
  float rmin;
  float rdelta;
  int nstep;
};

// Asymmetric fit x ~ scale * L - min_out, L in [0, nmax], min_out >= 0 (ggml's
// make_qkx2_quants). For every grid point it solves weighted least squares for scale and
// offset and keeps the one with the lowest weighted error (absolute error if use_mad, squared
// otherwise). laux is scratch of n bytes.
float fit_scale_and_min(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                        float* min_out, uint8_t* laux, ScaleGrid grid, bool use_mad);

// Step 1 of Q4_K / Q5_K: n_sub sub-blocks of 32 at x, each weighted by rms(sub-block) + |x|
// and fitted by fit_scale_and_min: scales[j], mins[j] and L[32 j .. 32 j + 31].
using FitQ45Fn = void (*)(const float* x, int n_sub, int nmax, ScaleGrid grid, uint8_t* L, float* scales, float* mins);
void fit_q45_k(const float* x, int n_sub, int nmax, ScaleGrid grid, uint8_t* L, float* scales, float* mins);

// Step 1 of Q6_K on one super-block: fit_symmetric_rmse(16, 32, ...) on each 16-element group j,
// giving scales[j] and L[16 j .. 16 j + 15].
using FitQ6Fn = void (*)(const float* x, float* scales, int8_t* L);
void fit_q6_k(const float* x, float* scales, int8_t* L);

}  // namespace owl::quant::detail

namespace owl::quant {

// The K-quant quantizers with their step 1 (the costly search) supplied by the caller: a SIMD
// kernel passes a fit bit-exact with the reference's, and the rest stays the reference's.
// quantize_row_q4_K(x, y, n) is quantize_row_q4_K_with(x, y, n, detail::fit_q45_k), and so on.
void quantize_row_q4_K_with(const float* x, BlockQ4_K* y, int64_t n, detail::FitQ45Fn fit);
void quantize_row_q5_K_with(const float* x, BlockQ5_K* y, int64_t n, detail::FitQ45Fn fit);
void quantize_row_q6_K_with(const float* x, BlockQ6_K* y, int64_t n, detail::FitQ6Fn fit);

}  // namespace owl::quant
