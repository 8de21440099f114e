// Scalar reference dot products, one per weight format. For block formats each block's
// integer dot product is exact (int32) and is scaled and summed in f32 in block order, as
// llama.cpp's generic kernels; float formats accumulate in f64.
#include <cstring>

#include "kernels/ref/ref.h"
#include "quant/blocks.h"
#include "quant/half.h"

namespace owl::kernels {
namespace {

using namespace owl::quant;

template <typename Row>
void for_rows(const void* x, size_t x_stride, int n_x, float* y, Row row) {
  for (int r = 0; r < n_x; ++r) y[r] = row(static_cast<const uint8_t*>(x) + r * x_stride);
}

// Element j of a Q4_0/Q4_1 block: low nibble of qs[j] for j < 16, high nibble of qs[j - 16].
inline int nibble(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }
// Bit 4 of element j of a Q5_0/Q5_1 block: bit j of the little-endian 32-bit qh.
inline int fifth_bit(const uint8_t* qh, int j) { return (qh[j / 8] >> (j % 8)) & 1; }

}  // namespace

// sum_i w[i] * x[i], f32 weights and activations.
void dot_f32_f32_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const float* wf = static_cast<const float*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const float* xf = reinterpret_cast<const float*>(xr);
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(wf[i]) * xf[i];
    return static_cast<float>(s);
  });
}

// sum_i f16(w[i]) * f16(x[i]); the activation row was rounded to f16 once (quantize_row_f16),
// as llama.cpp's vec_dot_type for F16 weights. Products of two f16 are exact in f64.
void dot_f16_f16_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const uint16_t* wh = static_cast<const uint16_t*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const uint16_t* xh = reinterpret_cast<const uint16_t*>(xr);
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(f16_to_f32(wh[i])) * f16_to_f32(xh[i]);
    return static_cast<float>(s);
  });
}

// sum_i bf16(w[i]) * bf16(x[i]); the activation row was rounded to bf16 once (quantize_row_bf16).
void dot_bf16_bf16_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const uint16_t* wh = static_cast<const uint16_t*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const uint16_t* xh = reinterpret_cast<const uint16_t*>(xr);
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(bf16_to_f32(wh[i])) * bf16_to_f32(xh[i]);
    return static_cast<float>(s);
  });
}

// sum_b d_w d_x sum_j (q_j - 8) x_j.
void dot_q4_0_q8_0_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ4_0* wb = static_cast<const BlockQ4_0*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
      int sumi = 0;
      for (int j = 0; j < kQK; ++j) sumi += (nibble(wb[b].qs, j) - 8) * xb[b].qs[j];
      s += static_cast<float>(sumi) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
    }
    return s;
  });
}

// sum_b (d_w d_x sum_j q_j x_j + m_w s_x), s_x = d_x sum_j x_j stored in the Q8_1 block.
void dot_q4_1_q8_1_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ4_1* wb = static_cast<const BlockQ4_1*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_1* xb = reinterpret_cast<const BlockQ8_1*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
      int sumi = 0;
      for (int j = 0; j < kQK; ++j) sumi += nibble(wb[b].qs, j) * xb[b].qs[j];
      s += static_cast<float>(sumi) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d)) +
           f16_to_f32(wb[b].m) * f16_to_f32(xb[b].s);
    }
    return s;
  });
}

// sum_b d_w d_x sum_j (q5_j - 16) x_j.
void dot_q5_0_q8_0_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ5_0* wb = static_cast<const BlockQ5_0*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
      int sumi = 0;
      for (int j = 0; j < kQK; ++j) {
        const int q = nibble(wb[b].qs, j) | (fifth_bit(wb[b].qh, j) << 4);
        sumi += (q - 16) * xb[b].qs[j];
      }
      s += static_cast<float>(sumi) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
    }
    return s;
  });
}

// sum_b (d_w d_x sum_j q5_j x_j + m_w s_x).
void dot_q5_1_q8_1_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ5_1* wb = static_cast<const BlockQ5_1*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_1* xb = reinterpret_cast<const BlockQ8_1*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
      int sumi = 0;
      for (int j = 0; j < kQK; ++j) {
        const int q = nibble(wb[b].qs, j) | (fifth_bit(wb[b].qh, j) << 4);
        sumi += q * xb[b].qs[j];
      }
      s += static_cast<float>(sumi) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d)) +
           f16_to_f32(wb[b].m) * f16_to_f32(xb[b].s);
    }
    return s;
  });
}

// sum_b d_w d_x sum_j q_j x_j.
void dot_q8_0_q8_0_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ8_0* wb = static_cast<const BlockQ8_0*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
      int sumi = 0;
      for (int j = 0; j < kQK; ++j) sumi += wb[b].qs[j] * xb[b].qs[j];
      s += static_cast<float>(sumi) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
    }
    return s;
  });
}

// Q2_K: element e = 128 h + 32 k + l (half h, 2-bit plane k = shift / 2, l < 32) is
// (qs[32 h + l] >> 2k) & 3 with sub-block i = e / 16: w = d (sc_i & 15) q - dmin (sc_i >> 4).
// Per super-block: d_x (d sum_i sc_i sum q x - dmin sum_i m_i bsum_i).
void dot_q2_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ2_K* wb = static_cast<const BlockQ2_K*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_K* xb = reinterpret_cast<const BlockQ8_K*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      int isum = 0;
      int imin = 0;
      for (int e = 0; e < kQK_K; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32, i = e / 16;
        const int q = (wb[b].qs[32 * h + l] >> (2 * k)) & 3;
        isum += (wb[b].scales[i] & 0xF) * q * xb[b].qs[e];
      }
      for (int i = 0; i < 16; ++i) imin += (wb[b].scales[i] >> 4) * xb[b].bsums[i];
      s += xb[b].d * (f16_to_f32(wb[b].d) * static_cast<float>(isum)) -
           xb[b].d * (f16_to_f32(wb[b].dmin) * static_cast<float>(imin));
    }
    return s;
  });
}

void unpack_scales_q3_K(const uint8_t* packed, int8_t* sc) {
  // Scale i: low 4 bits in byte i % 8 (low nibble for i < 8, high for i >= 8), high 2 bits
  // in byte 8 + i % 4 at bit 2 * (i / 4).
  for (int i = 0; i < 16; ++i) {
    const int lo = i < 8 ? packed[i] & 0xF : packed[i - 8] >> 4;
    const int hi = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    sc[i] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

// Q3_K: element e = 128 h + 32 k + l: q = ((qs[32 h + l] >> 2k) & 3) - 4 * !(hmask[l] bit
// 4h + k), w = d * sc_{e / 16} * q. Per super-block: d_x d sum_i sc_i sum q x.
void dot_q3_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ3_K* wb = static_cast<const BlockQ3_K*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_K* xb = reinterpret_cast<const BlockQ8_K*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      int8_t sc[16];
      unpack_scales_q3_K(wb[b].scales, sc);
      int isum = 0;
      for (int e = 0; e < kQK_K; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int lo = (wb[b].qs[32 * h + l] >> (2 * k)) & 3;
        const int hbit = (wb[b].hmask[l] >> (4 * h + k)) & 1;
        isum += sc[e / 16] * (lo - (hbit ? 0 : 4)) * xb[b].qs[e];
      }
      s += xb[b].d * (f16_to_f32(wb[b].d) * static_cast<float>(isum));
    }
    return s;
  });
}

void unpack_scales_k4(const uint8_t* p, uint8_t* sc, uint8_t* m) {
  // Sub-blocks 0..3: 6 bits in bytes 0..3 (scale) and 4..7 (min). Sub-blocks 4..7: low 4 bits
  // in the nibbles of bytes 8..11, high 2 bits in the top bits of bytes 0..3 / 4..7.
  for (int j = 0; j < 4; ++j) {
    sc[j] = p[j] & 63;
    m[j] = p[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((p[j + 8] & 0xF) | ((p[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((p[j + 8] >> 4) | ((p[j + 4] >> 6) << 4));
  }
}

// Q4_K: element e = 64 c + l (chunk c, l < 64): q = qs[32 c + l % 32] low nibble for l < 32,
// high nibble otherwise; sub-block j = e / 32: w = d sc_j q - dmin m_j.
void dot_q4_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ4_K* wb = static_cast<const BlockQ4_K*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_K* xb = reinterpret_cast<const BlockQ8_K*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      uint8_t sc[8], m[8];
      unpack_scales_k4(wb[b].scales, sc, m);
      int isum = 0;
      int imin = 0;
      for (int e = 0; e < kQK_K; ++e) {
        const int c = e / 64, l = e % 64;
        const uint8_t byte = wb[b].qs[32 * c + l % 32];
        const int q = l < 32 ? byte & 0xF : byte >> 4;
        isum += sc[e / 32] * q * xb[b].qs[e];
      }
      for (int j = 0; j < 8; ++j) imin += m[j] * (xb[b].bsums[2 * j] + xb[b].bsums[2 * j + 1]);
      s += xb[b].d * (f16_to_f32(wb[b].d) * static_cast<float>(isum)) -
           xb[b].d * (f16_to_f32(wb[b].dmin) * static_cast<float>(imin));
    }
    return s;
  });
}

// Q5_K: as Q4_K with bit 4 of element 64 c + l in qh[l % 32] bit 2c (l < 32) or 2c + 1.
void dot_q5_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ5_K* wb = static_cast<const BlockQ5_K*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_K* xb = reinterpret_cast<const BlockQ8_K*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      uint8_t sc[8], m[8];
      unpack_scales_k4(wb[b].scales, sc, m);
      int isum = 0;
      int imin = 0;
      for (int e = 0; e < kQK_K; ++e) {
        const int c = e / 64, l = e % 64;
        const uint8_t byte = wb[b].qs[32 * c + l % 32];
        const int hi = (wb[b].qh[l % 32] >> (2 * c + (l >= 32))) & 1;
        const int q = (l < 32 ? byte & 0xF : byte >> 4) | (hi << 4);
        isum += sc[e / 32] * q * xb[b].qs[e];
      }
      for (int j = 0; j < 8; ++j) imin += m[j] * (xb[b].bsums[2 * j] + xb[b].bsums[2 * j + 1]);
      s += xb[b].d * (f16_to_f32(wb[b].d) * static_cast<float>(isum)) -
           xb[b].d * (f16_to_f32(wb[b].dmin) * static_cast<float>(imin));
    }
    return s;
  });
}

// Q6_K: element e = 128 h + 32 k + l: low 4 bits from ql[64 h + l + 32 (k & 1)] (low nibble
// for k < 2, high for k >= 2), high 2 bits from qh[32 h + l] >> 2k; w = d sc_{e/16} (q - 32).
void dot_q6_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ6_K* wb = static_cast<const BlockQ6_K*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_K* xb = reinterpret_cast<const BlockQ8_K*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      int isum = 0;
      for (int e = 0; e < kQK_K; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t lbyte = wb[b].ql[64 * h + l + 32 * (k & 1)];
        const int lo = k < 2 ? lbyte & 0xF : lbyte >> 4;
        const int hi = (wb[b].qh[32 * h + l] >> (2 * k)) & 3;
        isum += wb[b].scales[e / 16] * ((lo | (hi << 4)) - 32) * xb[b].qs[e];
      }
      s += xb[b].d * (f16_to_f32(wb[b].d) * static_cast<float>(isum));
    }
    return s;
  });
}

// sum_b d_w d_x sum_j q_j x_j over 256-element blocks with f32 scales.
void dot_q8_K_q8_K_ref(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  const BlockQ8_K* wb = static_cast<const BlockQ8_K*>(w);
  for_rows(x, x_stride, n_x, y, [&](const uint8_t* xr) {
    const BlockQ8_K* xb = reinterpret_cast<const BlockQ8_K*>(xr);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      int sumi = 0;
      for (int j = 0; j < kQK_K; ++j) sumi += wb[b].qs[j] * xb[b].qs[j];
      s += static_cast<float>(sumi) * (wb[b].d * xb[b].d);
    }
    return s;
  });
}

}  // namespace owl::kernels
