// AVX-512 weight panels (DotKernel::panel): kPanelW = 16 weight rows (Q4_0 and Q8_0: two such
// panels, 32 rows) against any number of activation rows, for matmuls with many activation rows
// (prefill, batched decode).
//
// The 16 rows are repacked on the stack, a chunk of blocks at a time, so that int32 lane l of
// a zmm belongs to weight row l: one vpdpbusd then multiplies 4 elements of all 16 rows by the
// same 4 activation bytes (a broadcast), and a block of 32 elements is 8 vpdpbusd into one
// accumulator per activation row, then one convert and one FMA with the 16 rows' scales. No
// horizontal sums: the 16 results of a row are one masked store. The repacking is paid once per
// chunk and shared by every activation row of the call. Formats: Q4_0 and Q8_0 (below), Q4_K,
// Q6_K and F16 (their own sections further down).
//
// Q4_0 and Q8_0 weights against Q8_0 activations: vpdpbusd takes unsigned x signed bytes. The
// weights are packed signed (Q4_0: q - 8; Q8_0: q) and the activations come as panel rows,
// biased unsigned (x + 128) with f32 scales (see kPanelW). A block's integer sum is then
// sum (x + 128) w = sum x w + 128 sum w; the last term depends on the weights only and is
// packed too, as the accumulator's start. Integer sums are exact; only the f32 scaling and
// summation order differ from the reference.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels/avx512/avx512.h"
#include "quant/blocks.h"
#include "quant/half.h"
#include "quant/quant.h"

namespace owl::kernels {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ4_K;
using quant::BlockQ8_0;
using quant::BlockQ8_K;

constexpr int kChunkBlocks = 32;  // 20 KiB packed: stays in L1 while the activation rows pass
constexpr int kPanelX = 8;        // activation rows per register pass

// One block of the 16 rows, whatever the weight format: signed 8-bit weights and the
// accumulator's start that takes the activations' bias off.
struct alignas(64) PackedBlock {
  __m512i w[8];         // lane l: row l's elements 4g..4g+3 as int8
  __m512i start;        // lane l: -128 sum w over row l's block
  uint16_t d[kPanelW];  // row l's f16 scale (stored one by one: loaded long after, as a vector)
};

// Row pointers of a panel, block b0 on: rows past n_w repeat the last row (their lanes are
// never stored).
template <typename Block>
void panel_rows(const TileArgs& t, int64_t b0, const Block* (&rows)[kPanelW]) {
  for (int l = 0; l < kPanelW; ++l) {
    rows[l] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(t.w) + std::min(l, t.n_w - 1) * t.w_stride) + b0;
  }
}

// The 16 bytes at `offset` in block k of 16 rows, transposed to dwords: p[j], lane l = bytes
// 4j..4j+3 of row l. z[q] holds rows 4q..4q+3 (dword 4m + j: row 4q + m); a permute gathers
// dwords j = 0, 1 (then 2, 3) of rows 0..7 of a pair of z, [j][row], and a shuffle joins rows
// 0..7 and 8..15.
template <typename Block>
inline void transpose_16x16(const Block* const (&rows)[kPanelW], int k, size_t offset, __m512i (&p)[4]) {
  auto at = [&](int l) { return reinterpret_cast<const __m128i*>(reinterpret_cast<const uint8_t*>(rows[l] + k) + offset); };
  const __m512i pick01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i pick23 = _mm512_add_epi32(pick01, _mm512_set1_epi32(2));
  __m512i z[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(at(4 * q)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128(at(4 * q + 1)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(at(4 * q + 2)), 2);
    z[q] = _mm512_inserti32x4(v, _mm_loadu_si128(at(4 * q + 3)), 3);
  }
  const __m512i a01 = _mm512_permutex2var_epi32(z[0], pick01, z[1]);
  const __m512i a23 = _mm512_permutex2var_epi32(z[0], pick23, z[1]);
  const __m512i b01 = _mm512_permutex2var_epi32(z[2], pick01, z[3]);
  const __m512i b23 = _mm512_permutex2var_epi32(z[2], pick23, z[3]);
  p[0] = _mm512_shuffle_i64x2(a01, b01, _MM_SHUFFLE(1, 0, 1, 0));
  p[1] = _mm512_shuffle_i64x2(a01, b01, _MM_SHUFFLE(3, 2, 3, 2));
  p[2] = _mm512_shuffle_i64x2(a23, b23, _MM_SHUFFLE(1, 0, 1, 0));
  p[3] = _mm512_shuffle_i64x2(a23, b23, _MM_SHUFFLE(3, 2, 3, 2));
}

// start = -128 sum w (four independent sums, not one chain of eight) and d, the f16 scale at
// the start of each row's block.
template <typename Block>
inline void finish_block(const Block* const (&rows)[kPanelW], int k, PackedBlock& o) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum[4];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) sum[g] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, o.w[g]), ones, o.w[4 + g]);
  const __m512i all = _mm512_add_epi32(_mm512_add_epi32(sum[0], sum[1]), _mm512_add_epi32(sum[2], sum[3]));
  o.start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(all, 7));
#pragma GCC unroll 16
  for (int l = 0; l < kPanelW; ++l) std::memcpy(&o.d[l], &rows[l][k].d, 2);
}

// Q4_0: w = q - 8 from the nibbles (low: elements 4j.., high: 16 + 4j..).
void pack_q4_0(const TileArgs& t, int64_t b0, int count, PackedBlock* out) {
  const BlockQ4_0* rows[kPanelW];
  panel_rows(t, b0, rows);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i eight = _mm512_set1_epi8(8);
  for (int k = 0; k < count; ++k) {
    __m512i p[4];
    transpose_16x16(rows, k, offsetof(BlockQ4_0, qs), p);
    PackedBlock& o = out[k];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      o.w[j] = _mm512_sub_epi8(_mm512_and_si512(p[j], m4), eight);
      o.w[4 + j] = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(p[j], 4), m4), eight);
    }
    finish_block(rows, k, o);
  }
}

// Q8_0: w = q, the two halves of each block transposed.
void pack_q8_0(const TileArgs& t, int64_t b0, int count, PackedBlock* out) {
  const BlockQ8_0* rows[kPanelW];
  panel_rows(t, b0, rows);
  for (int k = 0; k < count; ++k) {
    PackedBlock& o = out[k];
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      __m512i p[4];
      transpose_16x16(rows, k, offsetof(BlockQ8_0, qs) + 16 * half, p);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) o.w[4 * half + j] = p[j];
    }
    finish_block(rows, k, o);
  }
}

// y[r0 + r][0..n_w) = acc[r] (first) or += acc[r] (a later chunk of blocks).
template <int NX>
inline void store_rows(const TileArgs& t, const __m512 (&acc)[NX], int r0, bool first) {
  const __mmask16 m = static_cast<__mmask16>((1u << t.n_w) - 1);
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) {
    float* y = t.y + (r0 + r) * t.y_stride;
    const __m512 v = first ? acc[r] : _mm512_add_ps(acc[r], _mm512_maskz_loadu_ps(m, y));
    _mm512_mask_storeu_ps(y, m, v);
  }
}

inline __m512i broadcast_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(static_cast<int>(v));
}

// NX activation rows (panel rows, blocks [b0, b0 + count)) against the packed blocks; adds the
// 16-lane results to y (first: stores them).
template <int NX>
void panel_rows_q8_0(const TileArgs& t, const PackedBlock* pk, int64_t b0, int count, int r0, bool first) {
  const uint8_t* xq[NX];
  const float* xd[NX];
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(t.x) + (r0 + r) * t.x_stride;
    xq[r] = row + b0 * quant::kQK;
    xd[r] = reinterpret_cast<const float*>(row + t.n) + b0;
  }
  __m512 acc[NX];
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (int k = 0; k < count; ++k) {
    const PackedBlock& p = pk[k];
    const __m512 wd = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p.d)));
    __m512i isum[NX];
#pragma GCC unroll 8
    for (int r = 0; r < NX; ++r) isum[r] = p.start;
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m512i w = _mm512_load_si512(&p.w[g]);
#pragma GCC unroll 8
      for (int r = 0; r < NX; ++r) {
        isum[r] = _mm512_dpbusd_epi32(isum[r], broadcast_u32(xq[r] + k * quant::kQK + 4 * g), w);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NX; ++r) {
      const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(xd[r][k]));
      acc[r] = _mm512_fmadd_ps(v, wd, acc[r]);
    }
  }
  store_rows(t, acc, r0, first);
}

// f(integral_constant N) for the runtime n in [1, Max].
template <int Max, typename F>
inline void with_count(int n, F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((n == I + 1 ? (f(std::integral_constant<int, I + 1>{}), 0) : 0), ...);
  }(std::make_integer_sequence<int, Max>{});
}

// ---- Q4_K x Q8_K ---------------------------------------------------------------------------
// w = d sc_s q - dmin m_s over sub-block s (32 elements) of a 256-element block. The nibbles q
// are unsigned and the activations' bytes signed, as vpdpbusd takes them, so nothing is biased:
// a sub-block's integer sum is scaled by d sc_s (f32, per row lane), and the mins come off once
// per block as dmin sum_s m_s (bsum_2s + bsum_2s+1), exact in int32 by vpdpwssd.

constexpr int kChunkBlocksK = 4;  // 4 x 4.7 KiB packed
constexpr int kPanelXK = 4;       // activation rows per register pass

struct alignas(64) PackedQ4_K {
  __m512i w[8][8];  // [s][g], lane l: row l's elements 32 s + 4 g..+3, the nibbles q
  __m512 dsc[8];    // lane l: d sc_s of row l
  __m512i mins[8];  // lane l: m_s of row l in both int16 halves
  __m512 dmin;      // lane l: dmin of row l
};

// Byte i of each dword lane.
inline __m512i byte_of(__m512i v, int i) { return _mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xFF)); }

// d, dmin and the 6-bit scales and mins of 16 rows' block k (get_scale_min_k4, in lanes): the
// first 16 bytes of a Q4_K block are d, dmin and the 12 bytes of scales.
inline void unpack_scales_q4_K(const BlockQ4_K* const (&rows)[kPanelW], int k, PackedQ4_K& o) {
  static_assert(offsetof(BlockQ4_K, d) == 0 && offsetof(BlockQ4_K, dmin) == 2 && offsetof(BlockQ4_K, scales) == 4);
  __m512i p[4];  // p[0]: d | dmin << 16; p[1..3]: scales bytes 0..3, 4..7, 8..11
  transpose_16x16(rows, k, 0, p);
  const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(p[0]));
  o.dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(p[0], 16)));
  const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512i a = byte_of(p[1], j), b = byte_of(p[2], j), c = byte_of(p[3], j);
    const __m512i sc_lo = _mm512_and_si512(a, m63), m_lo = _mm512_and_si512(b, m63);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(c, m15), _mm512_slli_epi32(_mm512_srli_epi32(a, 6), 4));
    const __m512i m_hi = _mm512_or_si512(_mm512_srli_epi32(c, 4), _mm512_slli_epi32(_mm512_srli_epi32(b, 6), 4));
    o.dsc[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc_lo));
    o.dsc[4 + j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc_hi));
    o.mins[j] = _mm512_or_si512(m_lo, _mm512_slli_epi32(m_lo, 16));
    o.mins[4 + j] = _mm512_or_si512(m_hi, _mm512_slli_epi32(m_hi, 16));
  }
}

void pack_q4_K(const TileArgs& t, int64_t b0, int count, PackedQ4_K* out) {
  const BlockQ4_K* rows[kPanelW];
  panel_rows(t, b0, rows);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int k = 0; k < count; ++k) {
    PackedQ4_K& o = out[k];
    for (int c = 0; c < 4; ++c) {  // 32 bytes of qs: sub-block 2c in the low nibbles, 2c + 1 high
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        __m512i p[4];
        transpose_16x16(rows, k, offsetof(BlockQ4_K, qs) + 32 * c + 16 * half, p);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          o.w[2 * c][4 * half + j] = _mm512_and_si512(p[j], m4);
          o.w[2 * c + 1][4 * half + j] = _mm512_and_si512(_mm512_srli_epi16(p[j], 4), m4);
        }
      }
    }
    unpack_scales_q4_K(rows, k, o);
  }
}

template <int NX>
void panel_rows_q8_K(const TileArgs& t, const PackedQ4_K* pk, int64_t b0, int count, int r0, bool first) {
  const BlockQ8_K* xb[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) {
    xb[r] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(t.x) + (r0 + r) * t.x_stride) + b0;
  }
  __m512 acc[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (int k = 0; k < count; ++k) {
    const PackedQ4_K& p = pk[k];
    __m512 block[NX];
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) block[r] = _mm512_setzero_ps();
    for (int sb = 0; sb < 8; ++sb) {
      __m512i isum[NX];
#pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) isum[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        const __m512i w = _mm512_load_si512(&p.w[sb][g]);
#pragma GCC unroll 4
        for (int r = 0; r < NX; ++r) {
          isum[r] = _mm512_dpbusd_epi32(isum[r], w, broadcast_u32(reinterpret_cast<const uint8_t*>(xb[r][k].qs) + 32 * sb + 4 * g));
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) block[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), p.dsc[sb], block[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) {
      __m512i imin = _mm512_setzero_si512();
      for (int sb = 0; sb < 8; ++sb) {
        imin = _mm512_dpwssd_epi32(imin, p.mins[sb], broadcast_u32(reinterpret_cast<const uint8_t*>(xb[r][k].bsums + 2 * sb)));
      }
      block[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(imin), p.dmin, block[r]);
      acc[r] = _mm512_fmadd_ps(block[r], _mm512_set1_ps(xb[r][k].d), acc[r]);
    }
  }
  store_rows(t, acc, r0, first);
}

// ---- Q6_K x Q8_K ---------------------------------------------------------------------------
// w = d sc_s (q - 32) over sub-block s (16 elements) of a 256-element block, q = ql | qh << 4
// (6 bits, unsigned as vpdpbusd takes it). A sub-block's integer sum is scaled by d sc_s (f32,
// per row lane); the offset comes off once per block as 32 d sum_s sc_s bsum_s, exact in int32
// by vpdpwssd on the activations' 16-element sums.

struct alignas(64) PackedQ6_K {
  __m512i w[16][4];  // [s][g], lane l: row l's elements 16 s + 4 g..+3, the 6-bit q
  __m512 dsc[16];    // lane l: d sc_s of row l
  __m512i sc2[8];    // lane l: sc_2i and sc_2i+1 of row l as int16
  __m512 d32;        // lane l: 32 d of row l
};

// Byte i of each dword lane, sign-extended.
inline __m512i sbyte_of(__m512i v, int i) { return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * i), 24); }

void pack_q6_K(const TileArgs& t, int64_t b0, int count, PackedQ6_K* out) {
  const quant::BlockQ6_K* rows[kPanelW];
  panel_rows(t, b0, rows);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
  for (int k = 0; k < count; ++k) {
    PackedQ6_K& o = out[k];
    for (int h = 0; h < 2; ++h) {      // halves of 128 elements: ql[64 h..], qh[32 h..]
#pragma GCC unroll 2
      for (int c = 0; c < 2; ++c) {    // elements 16 c..16 c + 15 of each 32 of the half
        __m512i a[4], b[4], hb[4];
        transpose_16x16(rows, k, offsetof(quant::BlockQ6_K, ql) + 64 * h + 16 * c, a);
        transpose_16x16(rows, k, offsetof(quant::BlockQ6_K, ql) + 64 * h + 32 + 16 * c, b);
        transpose_16x16(rows, k, offsetof(quant::BlockQ6_K, qh) + 32 * h + 16 * c, hb);
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {  // sub-block 8 h + 2 j + c holds elements 128 h + 32 j + 16 c..
          const __m512i hi = hb[g];
          o.w[8 * h + 0 + c][g] = _mm512_or_si512(_mm512_and_si512(a[g], m4), _mm512_slli_epi16(_mm512_and_si512(hi, m2), 4));
          o.w[8 * h + 2 + c][g] = _mm512_or_si512(_mm512_and_si512(b[g], m4),
                                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hi, 2), m2), 4));
          o.w[8 * h + 4 + c][g] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a[g], 4), m4),
                                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hi, 4), m2), 4));
          o.w[8 * h + 6 + c][g] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(b[g], 4), m4),
                                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hi, 6), m2), 4));
        }
      }
    }
    __m512i sc[4], tail[4];  // sc[q] lane l: scales 4 q..4 q + 3; tail[3]: scales 14, 15 and d
    transpose_16x16(rows, k, offsetof(quant::BlockQ6_K, scales), sc);
    transpose_16x16(rows, k, offsetof(quant::BlockQ6_K, scales) + 2, tail);
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(tail[3], 16)));
    o.d32 = _mm512_mul_ps(d, _mm512_set1_ps(32.0f));
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      __m512i v[4];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        v[i] = sbyte_of(sc[q], i);
        o.dsc[4 * q + i] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(v[i]));
      }
      const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
      o.sc2[2 * q] = _mm512_or_si512(_mm512_and_si512(v[0], lo16), _mm512_slli_epi32(v[1], 16));
      o.sc2[2 * q + 1] = _mm512_or_si512(_mm512_and_si512(v[2], lo16), _mm512_slli_epi32(v[3], 16));
    }
  }
}

template <int NX>
void panel_rows_q6_K(const TileArgs& t, const PackedQ6_K* pk, int64_t b0, int count, int r0, bool first) {
  const BlockQ8_K* xb[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) {
    xb[r] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(t.x) + (r0 + r) * t.x_stride) + b0;
  }
  __m512 acc[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (int k = 0; k < count; ++k) {
    const PackedQ6_K& p = pk[k];
    __m512 block[NX];
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) block[r] = _mm512_setzero_ps();
    for (int sb = 0; sb < 16; ++sb) {
      __m512i isum[NX];
#pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) isum[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        const __m512i w = _mm512_load_si512(&p.w[sb][g]);
#pragma GCC unroll 4
        for (int r = 0; r < NX; ++r) {
          isum[r] = _mm512_dpbusd_epi32(isum[r], w, broadcast_u32(reinterpret_cast<const uint8_t*>(xb[r][k].qs) + 16 * sb + 4 * g));
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) block[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), p.dsc[sb], block[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) {
      __m512i ioff = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        ioff = _mm512_dpwssd_epi32(ioff, p.sc2[i], broadcast_u32(reinterpret_cast<const uint8_t*>(xb[r][k].bsums + 2 * i)));
      }
      block[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ioff), p.d32, block[r]);
      acc[r] = _mm512_fmadd_ps(block[r], _mm512_set1_ps(xb[r][k].d), acc[r]);
    }
  }
  store_rows(t, acc, r0, first);
}

// Reads the panel's weights once, in address order (its rows are contiguous), so that they come
// from DRAM at the rate of a sequential stream: packing reads 16 rows a few blocks at a time,
// a pattern that runs at a third of that rate when the weights are not cached (a decode step of
// a few sequences). Software prefetches of the same lines measured no faster.
void stream_in(const void* w, size_t bytes) {
  const auto* p = static_cast<const char*>(w);
  __m512i sink = _mm512_setzero_si512();
  for (size_t at = 0; at + 64 <= bytes; at += 64) sink = _mm512_or_si512(sink, _mm512_loadu_si512(p + at));
  __asm__ volatile("" : : "v"(sink));
}

// Packs each chunk of blocks, then runs every activation row against it.
template <int kChunk, int kRowsPerPass, typename Packed, typename Block, typename Pack, typename Rows>
void run_panel(const TileArgs& t, int64_t block_size, Pack pack, Rows rows) {
  static_assert(kPanelW == 16, "one zmm of int32 lanes per panel");
  Packed packed[kChunk];
  const int64_t nb = t.n / block_size;
  stream_in(t.w, static_cast<size_t>(t.n_w - 1) * t.w_stride + static_cast<size_t>(nb) * sizeof(Block));
  for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
    const int count = static_cast<int>(std::min<int64_t>(kChunk, nb - b0));
    pack(t, b0, count, packed);
    for (int r = 0; r < t.n_x; r += kRowsPerPass) {
      with_count<kRowsPerPass>(std::min(kRowsPerPass, t.n_x - r),
                               [&](auto nx) { rows(nx, packed, b0, count, r, b0 == 0); });
    }
  }
}

// Two panels (32 weight rows) against NX activation rows: each broadcast activation feeds both,
// which halves the activation loads per vpdpbusd (12-17% faster on 512 rows than one panel).
// Chunks are half as long, so both packed panels stay in L1.
template <int NX>
void panel_rows_q8_0_x2(const TileArgs& t0, const TileArgs& t1, const PackedBlock* pk0, const PackedBlock* pk1,
                        int64_t b0, int count, int r0, bool first) {
  const uint8_t* xq[NX];
  const float* xd[NX];
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(t0.x) + (r0 + r) * t0.x_stride;
    xq[r] = row + b0 * quant::kQK;
    xd[r] = reinterpret_cast<const float*>(row + t0.n) + b0;
  }
  __m512 acc0[NX], acc1[NX];
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) acc0[r] = _mm512_setzero_ps(), acc1[r] = _mm512_setzero_ps();
  for (int k = 0; k < count; ++k) {
    const PackedBlock& p0 = pk0[k];
    const PackedBlock& p1 = pk1[k];
    __m512i s0[NX], s1[NX];
#pragma GCC unroll 8
    for (int r = 0; r < NX; ++r) s0[r] = p0.start, s1[r] = p1.start;
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m512i w0 = _mm512_load_si512(&p0.w[g]);
      const __m512i w1 = _mm512_load_si512(&p1.w[g]);
#pragma GCC unroll 8
      for (int r = 0; r < NX; ++r) {
        const __m512i x = broadcast_u32(xq[r] + k * quant::kQK + 4 * g);
        s0[r] = _mm512_dpbusd_epi32(s0[r], x, w0);
        s1[r] = _mm512_dpbusd_epi32(s1[r], x, w1);
      }
    }
    const __m512 wd0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p0.d)));
    const __m512 wd1 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p1.d)));
#pragma GCC unroll 8
    for (int r = 0; r < NX; ++r) {
      const __m512 d = _mm512_set1_ps(xd[r][k]);
      acc0[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s0[r]), d), wd0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1[r]), d), wd1, acc1[r]);
    }
  }
  store_rows(t0, acc0, r0, first);
  store_rows(t1, acc1, r0, first);
}

constexpr int kPanelX2 = 6;         // activation rows per register pass: 24 accumulators
constexpr int kChunkBlocks2 = 16;   // 2 x 10 KiB packed

// Up to 2 kPanelW rows of Q4_0 or Q8_0: two panels at once, or one where n_w fits in one.
template <typename Block, typename Pack>
void run_panel_x2(const TileArgs& t, Pack pack) {
  if (t.n_w <= kPanelW) {
    return run_panel<kChunkBlocks, kPanelX, PackedBlock, Block>(t, quant::kQK, pack, [&](auto nx, auto... a) {
      panel_rows_q8_0<nx()>(t, a...);
    });
  }
  TileArgs t0 = t, t1 = t;
  t0.n_w = kPanelW;
  t1.n_w = t.n_w - kPanelW;
  t1.w = static_cast<const uint8_t*>(t.w) + kPanelW * t.w_stride;
  t1.y = t.y + kPanelW;
  PackedBlock packed0[kChunkBlocks2], packed1[kChunkBlocks2];
  const int64_t nb = t.n / quant::kQK;
  stream_in(t.w, static_cast<size_t>(t.n_w - 1) * t.w_stride + static_cast<size_t>(nb) * sizeof(Block));
  for (int64_t b0 = 0; b0 < nb; b0 += kChunkBlocks2) {
    const int count = static_cast<int>(std::min<int64_t>(kChunkBlocks2, nb - b0));
    pack(t0, b0, count, packed0);
    pack(t1, b0, count, packed1);
    for (int r = 0; r < t.n_x; r += kPanelX2) {
      with_count<kPanelX2>(std::min(kPanelX2, t.n_x - r), [&](auto nx) {
        panel_rows_q8_0_x2<nx()>(t0, t1, packed0, packed1, b0, count, r, b0 == 0);
      });
    }
  }
}

// ---- F16 x F16 --------------------------------------------------------------------------------
// Products of f16 values are exact in f32, so the panel sums what the dot sums (f32 FMAs of f16 x
// f16 products; only the order differs). The weights are widened to f32 lanes (row l in lane l),
// each activation row's chunk is widened once per pass, and an element of 16 rows is one FMA
// with the activation broadcast from memory: no horizontal sums.

constexpr int kChunkF16 = 128;  // elements per chunk: 8 KiB of packed weights
constexpr int kPanelXF16 = 16;  // activation rows per register pass

struct Half8 {
  uint16_t v[8];
};

// Elements [e0, e0 + count) (multiples of 8) of the 16 rows, widened: out[k] lane l = row l's e0 + k.
void pack_f16(const TileArgs& t, int64_t e0, int count, __m512* out) {
  const Half8* rows[kPanelW];
  panel_rows(t, e0 / 8, rows);
  for (int k = 0; k < count / 8; ++k) {
    __m512i p[4];  // lane l: row l's elements 2j, 2j + 1 of these 8
    transpose_16x16(rows, k, 0, p);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      out[8 * k + 2 * j] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(p[j]));
      out[8 * k + 2 * j + 1] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(p[j], 16)));
    }
  }
}

template <int NX>
void panel_rows_f16(const TileArgs& t, const __m512* pk, int64_t e0, int count, int r0, bool first) {
  alignas(64) float xf[NX][kChunkF16];
#pragma GCC unroll 16
  for (int r = 0; r < NX; ++r) {
    const auto* x = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(t.x) + (r0 + r) * t.x_stride) + e0;
    for (int i = 0; i < count; i += 16) {
      _mm512_store_ps(xf[r] + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))));
    }
  }
  __m512 acc[NX];
#pragma GCC unroll 16
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int k = 0; k < count; ++k) {
    const __m512 w = _mm512_load_ps(&pk[k]);
#pragma GCC unroll 16
    for (int r = 0; r < NX; ++r) acc[r] = _mm512_fmadd_ps(w, _mm512_set1_ps(xf[r][k]), acc[r]);
  }
  store_rows(t, acc, r0, first);
}

}  // namespace

void panel_f16_f16_avx512(const TileArgs& t) {
  static_assert(kChunkF16 % 16 == 0);
  const int64_t n16 = t.n / 16 * 16;
  alignas(64) __m512 packed[kChunkF16];
  stream_in(t.w, static_cast<size_t>(t.n_w - 1) * t.w_stride + static_cast<size_t>(t.n) * 2);
  for (int64_t e0 = 0; e0 < n16; e0 += kChunkF16) {
    const int count = static_cast<int>(std::min<int64_t>(kChunkF16, n16 - e0));
    pack_f16(t, e0, count, packed);
    for (int r = 0; r < t.n_x; r += kPanelXF16) {
      with_count<kPanelXF16>(std::min(kPanelXF16, t.n_x - r),
                             [&](auto nx) { panel_rows_f16<nx()>(t, packed, e0, count, r, e0 == 0); });
    }
  }
  if (n16 == t.n) return;
  // The last n % 16 elements, one product at a time (y holds the sums of the rest, if any).
  for (int r = 0; r < t.n_x; ++r) {
    const auto* x = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(t.x) + r * t.x_stride);
    for (int l = 0; l < t.n_w; ++l) {
      const auto* w = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(t.w) + l * t.w_stride);
      float sum = n16 == 0 ? 0.0f : t.y[r * t.y_stride + l];
      for (int64_t i = n16; i < t.n; ++i) sum += quant::f16_to_f32(w[i]) * quant::f16_to_f32(x[i]);
      t.y[r * t.y_stride + l] = sum;
    }
  }
}

void panel_q4_0_q8_0_avx512(const TileArgs& t) { run_panel_x2<BlockQ4_0>(t, pack_q4_0); }
void panel_q8_0_q8_0_avx512(const TileArgs& t) { run_panel_x2<BlockQ8_0>(t, pack_q8_0); }
void panel_q6_K_q8_K_avx512(const TileArgs& t) {
  run_panel<kChunkBlocksK, kPanelXK, PackedQ6_K, quant::BlockQ6_K>(t, quant::kQK_K, pack_q6_K, [&](auto nx, auto... a) {
    panel_rows_q6_K<nx()>(t, a...);
  });
}
void panel_q4_K_q8_K_avx512(const TileArgs& t) {
  run_panel<kChunkBlocksK, kPanelXK, PackedQ4_K, BlockQ4_K>(t, quant::kQK_K, pack_q4_K, [&](auto nx, auto... a) {
    panel_rows_q8_K<nx()>(t, a...);
  });
}

}  // namespace owl::kernels
