// AVX-512 weight panels (DotKernel::panel): kPanelW = 16 weight rows (Q4_0, Q8_0 and F16: two such
// panels, 32 rows) against any number of activation rows, for matmuls with many activation rows
// (prefill, batched decode).
//
// The 16 rows are repacked on the stack, a chunk of blocks at a time, so that int32 lane l of
// a zmm belongs to weight row l: one vpdpbusd then multiplies 4 elements of all 16 rows by the
// same 4 activation bytes (a broadcast), and a block of 32 elements is 8 vpdpbusd into one
// accumulator per activation row, then one convert and one FMA with the 16 rows' scales. No
// horizontal sums: the 16 results of a row are one masked store. The repacking is paid once per
// chunk and shared by every activation row of the call. Formats: Q4_0 and Q8_0 (below), Q4_K,
// Q6_K, F16 and BF16 (their own sections further down).
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
constexpr int kPanelX2 = 6;       // with two panels: 24 accumulators

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

// start = -128 sum w (four independent sums, not one chain of eight).
inline void set_start(PackedBlock& o) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum[4];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) sum[g] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, o.w[g]), ones, o.w[4 + g]);
  const __m512i all = _mm512_add_epi32(_mm512_add_epi32(sum[0], sum[1]), _mm512_add_epi32(sum[2], sum[3]));
  o.start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(all, 7));
}

// The start and d, the f16 scale at the start of each row's block.
template <typename Block>
inline void finish_block(const Block* const (&rows)[kPanelW], int k, PackedBlock& o) {
  set_start(o);
#pragma GCC unroll 16
  for (int l = 0; l < kPanelW; ++l) std::memcpy(&o.d[l], &rows[l][k].d, 2);
}

// w = q - 8 from the four vectors of nibbles p (lane l: row l; low nibbles: elements 4j.., high:
// 16 + 4j..), as the GGUF rows give them after transposing and the packed layout stores them.
inline void unpack_q4_0(const __m512i (&p)[4], PackedBlock& o) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i eight = _mm512_set1_epi8(8);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    o.w[j] = _mm512_sub_epi8(_mm512_and_si512(p[j], m4), eight);
    o.w[4 + j] = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(p[j], 4), m4), eight);
  }
}

// Q4_0: w = q - 8 from the nibbles (low: elements 4j.., high: 16 + 4j..).
void pack_q4_0(const TileArgs& t, int64_t b0, int count, PackedBlock* out) {
  const BlockQ4_0* rows[kPanelW];
  panel_rows(t, b0, rows);
  for (int k = 0; k < count; ++k) {
    __m512i p[4];
    transpose_16x16(rows, k, offsetof(BlockQ4_0, qs), p);
    unpack_q4_0(p, out[k]);
    finish_block(rows, k, out[k]);
  }
}

// The same from the packed layout (kernels.h), t.w at the group: already transposed.
void pack_q4_0_packed(const TileArgs& t, int64_t b0, int count, PackedBlock* out) {
  const int64_t nb = t.n / quant::kQK;
  const uint8_t* quants = static_cast<const uint8_t*>(t.w);
  const uint8_t* scales = quants + nb * 256;
  for (int k = 0; k < count; ++k) {
    const uint8_t* q = quants + (b0 + k) * 256;
    const __m512i p[4] = {_mm512_loadu_si512(q), _mm512_loadu_si512(q + 64), _mm512_loadu_si512(q + 128),
                          _mm512_loadu_si512(q + 192)};
    unpack_q4_0(p, out[k]);
    set_start(out[k]);
    std::memcpy(out[k].d, scales + (b0 + k) * 32, 32);
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

// NX activation rows (panel rows, blocks [b0, b0 + count)) against NP packed panels: each
// broadcast activation feeds all NP. Adds each panel's 16-lane results to its y (first: stores).
template <int NP, int NX>
void panel_rows_q8_0(const TileArgs (&t)[NP], const PackedBlock* const (&pk)[NP], int64_t b0, int count, int r0,
                     bool first) {
  const uint8_t* xq[NX];
  const float* xd[NX];
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(t[0].x) + (r0 + r) * t[0].x_stride;
    xq[r] = row + b0 * quant::kQK;
    xd[r] = reinterpret_cast<const float*>(row + t[0].n) + b0;
  }
  __m512 acc[NP][NX];
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
    for (int r = 0; r < NX; ++r) acc[p][r] = _mm512_setzero_ps();
  for (int k = 0; k < count; ++k) {
    __m512i isum[NP][NX];
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 8
      for (int r = 0; r < NX; ++r) isum[p][r] = pk[p][k].start;
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      __m512i w[NP];
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) w[p] = _mm512_load_si512(&pk[p][k].w[g]);
#pragma GCC unroll 8
      for (int r = 0; r < NX; ++r) {
        const __m512i x = broadcast_u32(xq[r] + k * quant::kQK + 4 * g);
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) isum[p][r] = _mm512_dpbusd_epi32(isum[p][r], x, w[p]);
      }
    }
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) {
      const __m512 wd = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(pk[p][k].d)));
#pragma GCC unroll 8
      for (int r = 0; r < NX; ++r) {
        const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[p][r]), _mm512_set1_ps(xd[r][k]));
        acc[p][r] = _mm512_fmadd_ps(v, wd, acc[p][r]);
      }
    }
  }
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p) store_rows(t[p], acc[p], r0, first);
}

// ---- Q4_K x Q8_K ---------------------------------------------------------------------------
// w = d sc_s q - dmin m_s over sub-block s (32 elements) of a 256-element block. The nibbles q
// are unsigned and the activations' bytes signed, as vpdpbusd takes them, so nothing is biased:
// a sub-block's integer sum is scaled by d sc_s (f32, per row lane), and the mins come off once
// per block as dmin sum_s m_s (bsum_2s + bsum_2s+1), exact in int32 by vpdpwssd.

constexpr int kChunkBlocksK = 4;  // 4 x 4.7 KiB packed
constexpr int kPanelXK = 4;       // activation rows per register pass

// The packed K-quant blocks share panel_rows_q8_K's fields: w, dsc, pairs, off.
struct alignas(64) PackedQ4_K {
  __m512i w[8][8];   // [s][g], lane l: row l's elements 32 s + 4 g..+3, the nibbles q
  __m512 dsc[8];     // lane l: d sc_s of row l
  __m512i pairs[8];  // lane l: m_s of row l in both int16 halves (against bsum_2s, bsum_2s+1)
  __m512 off;        // lane l: dmin of row l
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
  o.off = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(p[0], 16)));
  const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512i a = byte_of(p[1], j), b = byte_of(p[2], j), c = byte_of(p[3], j);
    const __m512i sc_lo = _mm512_and_si512(a, m63), m_lo = _mm512_and_si512(b, m63);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(c, m15), _mm512_slli_epi32(_mm512_srli_epi32(a, 6), 4));
    const __m512i m_hi = _mm512_or_si512(_mm512_srli_epi32(c, 4), _mm512_slli_epi32(_mm512_srli_epi32(b, 6), 4));
    o.dsc[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc_lo));
    o.dsc[4 + j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc_hi));
    o.pairs[j] = _mm512_or_si512(m_lo, _mm512_slli_epi32(m_lo, 16));
    o.pairs[4 + j] = _mm512_or_si512(m_hi, _mm512_slli_epi32(m_hi, 16));
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

// NX activation rows (Q8_K, blocks [b0, b0 + count)) against packed K-quant blocks (Q4_K,
// Q6_K): a block is sum_s dsc_s isum_s - off sum_i pairs_i . (bsum_2i, bsum_2i+1), where
// isum_s is sub-block s's integer sum (its kGroups dwords per lane) and the last sum is exact in
// int32 by vpdpwssd. Adds the 16-lane results to y (first: stores them).
template <int NX, typename Packed>
void panel_rows_q8_K(const TileArgs& t, const Packed* pk, int64_t b0, int count, int r0, bool first) {
  constexpr int kSub = sizeof(Packed::w) / sizeof(Packed::w[0]);
  constexpr int kGroups = sizeof(Packed::w[0]) / sizeof(__m512i);
  static_assert(sizeof(Packed::pairs) == 8 * sizeof(__m512i), "16 activation sums per block, in pairs");
  const BlockQ8_K* xb[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) {
    xb[r] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(t.x) + (r0 + r) * t.x_stride) + b0;
  }
  __m512 acc[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (int k = 0; k < count; ++k) {
    const Packed& p = pk[k];
    __m512 block[NX];
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) block[r] = _mm512_setzero_ps();
    for (int sb = 0; sb < kSub; ++sb) {
      __m512i isum[NX];
#pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) isum[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int g = 0; g < kGroups; ++g) {
        const __m512i w = _mm512_load_si512(&p.w[sb][g]);
#pragma GCC unroll 4
        for (int r = 0; r < NX; ++r) {
          const uint8_t* x = reinterpret_cast<const uint8_t*>(xb[r][k].qs) + 4 * (kGroups * sb + g);
          isum[r] = _mm512_dpbusd_epi32(isum[r], w, broadcast_u32(x));
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
        ioff = _mm512_dpwssd_epi32(ioff, p.pairs[i], broadcast_u32(reinterpret_cast<const uint8_t*>(xb[r][k].bsums + 2 * i)));
      }
      block[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ioff), p.off, block[r]);
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
  __m512i pairs[8];  // lane l: sc_2i and sc_2i+1 of row l as int16 (against bsum_2i, bsum_2i+1)
  __m512 off;        // lane l: 32 d of row l
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
    o.off = _mm512_mul_ps(d, _mm512_set1_ps(32.0f));
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      __m512i v[4];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        v[i] = sbyte_of(sc[q], i);
        o.dsc[4 * q + i] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(v[i]));
      }
      const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
      o.pairs[2 * q] = _mm512_or_si512(_mm512_and_si512(v[0], lo16), _mm512_slli_epi32(v[1], 16));
      o.pairs[2 * q + 1] = _mm512_or_si512(_mm512_and_si512(v[2], lo16), _mm512_slli_epi32(v[3], 16));
    }
  }
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

// NP panels of kPanelW rows (t.n_w > (NP - 1) kPanelW rows in all): packs each chunk of blocks
// of every panel, then runs the activation rows against them, kRowsPerPass at a time:
// rows(nx, panels' TileArgs[NP], packed[NP], b0, count, r0, first).
template <int NP, int kChunk, int kRowsPerPass, typename Packed, typename Block, typename Pack, typename Rows>
void run_panel(const TileArgs& t, int64_t block_size, Pack pack, Rows rows) {
  static_assert(kPanelW == 16, "one zmm of int32 lanes per panel");
  TileArgs ts[NP];
  Packed packed[NP][kChunk];
  const Packed* pk[NP];
  for (int p = 0; p < NP; ++p) {
    ts[p] = t;
    ts[p].w = static_cast<const uint8_t*>(t.w) + p * kPanelW * t.w_stride;
    ts[p].y = t.y + p * kPanelW;
    ts[p].n_w = std::min(kPanelW, t.n_w - p * kPanelW);
    pk[p] = packed[p];
  }
  const int64_t nb = t.n / block_size;
  stream_in(t.w, static_cast<size_t>(t.n_w - 1) * t.w_stride + static_cast<size_t>(nb) * sizeof(Block));
  for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
    const int count = static_cast<int>(std::min<int64_t>(kChunk, nb - b0));
    for (int p = 0; p < NP; ++p) pack(ts[p], b0, count, packed[p]);
    for (int r = 0; r < t.n_x; r += kRowsPerPass) {
      with_count<kRowsPerPass>(std::min(kRowsPerPass, t.n_x - r),
                               [&](auto nx) { rows(nx, ts, pk, b0, count, r, b0 == 0); });
    }
  }
}

// ---- One activation row of Q4_0 and Q8_0, in the panel's order --------------------------------
// A decode step of one sequence under batch invariance (kernels.h: MatmulArgs) must give the
// panel's bits, but packing costs more than the products when only one activation row uses it.
// The packing transposes 32 weight bytes per block and row; here each row's block integer sums
// come out in lanes as the tile kernels form them (tile_avx512.cpp: unsigned weights against
// signed activations, 4 blocks per vpdpbusd pair), and only those sums, one dword per block and
// row, are transposed to lanes = weight rows. Integer sums are exact, so they equal the
// panel's; the f32 steps that follow are the panel's own, in its order and chunks.

// Blocks b..b+3 (count of them; the rest zero) as the tile's quads: lo holds elements 0..15 of
// each block (128-bit lane k: block b + k), hi elements 16..31; unsigned bytes.
struct Quad {
  __m512i lo, hi;
};

inline Quad split_quad(__m512i a, __m512i b) {  // a: blocks 0, 1 as [lo hi lo hi], b: blocks 2, 3
  return {_mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 1, 3, 1))};
}

// 16 bytes at `offset` in each of blocks b..b+3 (kFull) or of the first `count` (the rest 0).
template <bool kFull, typename Block>
inline __m512i load_quad_bytes(const Block* wb, int64_t b, int count, size_t offset) {
  auto at = [&](int k) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint8_t*>(wb + b + k) + offset));
  };
  if constexpr (kFull) {
    const __m512i v = _mm512_inserti32x4(_mm512_castsi128_si512(at(0)), at(1), 1);
    return _mm512_inserti32x4(_mm512_inserti32x4(v, at(2), 2), at(3), 3);
  }
  __m512i v = _mm512_setzero_si512();
  for (int k = 0; k < count; ++k) v = _mm512_mask_broadcast_i32x4(v, static_cast<__mmask16>(0xF << (4 * k)), at(k));
  return v;
}

// Q4_0: the nibbles q (w = q - 8, offset 8). Q8_0: q + 128 (offset 128).
template <bool kFull>
inline Quad load_quad(const BlockQ4_0* wb, int64_t b, int count) {
  const __m512i v = load_quad_bytes<kFull>(wb, b, count, offsetof(BlockQ4_0, qs));
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  return {_mm512_and_si512(v, m4), _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)};
}
template <bool kFull>
inline Quad load_quad(const BlockQ8_0* wb, int64_t b, int count) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  return {_mm512_xor_si512(load_quad_bytes<kFull>(wb, b, count, offsetof(BlockQ8_0, qs)), bias),
          _mm512_xor_si512(load_quad_bytes<kFull>(wb, b, count, offsetof(BlockQ8_0, qs) + 16), bias)};
}
inline int weight_offset(const BlockQ4_0*) { return 8; }
inline int weight_offset(const BlockQ8_0*) { return 128; }

// The integer sums of 16 dword lanes, 4 per block, of quads 0..3: lane 4 k + j of the result is
// block 4 j + k's sum.
inline __m512i block_sums(const __m512i (&dp)[4]) {
  const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(dp[0], dp[1]), _mm512_unpackhi_epi32(dp[0], dp[1]));
  const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(dp[2], dp[3]), _mm512_unpackhi_epi32(dp[2], dp[3]));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
}

// In place: r[m] lane l = r[l] lane m before.
inline void transpose_dwords(__m512i (&r)[16]) {
  __m512i t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  __m512i u[16];  // u[4 i + c], 128-bit lane L: rows 4 i..4 i + 3 of column 4 L + c
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const __m512i x_even = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i x_odd = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i y_even = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i y_odd = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
    r[c] = _mm512_shuffle_i32x4(x_even, y_even, _MM_SHUFFLE(2, 0, 2, 0));
    r[8 + c] = _mm512_shuffle_i32x4(x_even, y_even, _MM_SHUFFLE(3, 1, 3, 1));
    r[4 + c] = _mm512_shuffle_i32x4(x_odd, y_odd, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_i32x4(x_odd, y_odd, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// sums[m] lane l: the integer sum of weight row l's block g0 + 4 (m % 4) + m / 4 against the
// activation row xq (panel row values), for the gn <= 16 blocks from g0 (rows >= n_w: 0).
template <typename Block>
void row_block_sums(const TileArgs& t, const uint8_t* xq, int64_t g0, int gn, __m512i (&sums)[16]) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(weight_offset(static_cast<const Block*>(nullptr))));
  Quad xs[4];
  __m512i start[4];
  for (int j = 0; j < 4; ++j) {
    const int count = std::clamp(gn - 4 * j, 0, 4);
    const uint8_t* at = xq + (g0 + 4 * j) * quant::kQK;
    const __mmask64 m0 = count >= 2 ? ~__mmask64{0} : count == 1 ? __mmask64{0xFFFFFFFF} : 0;
    const __mmask64 m1 = count >= 4 ? ~__mmask64{0} : count == 3 ? __mmask64{0xFFFFFFFF} : 0;
    // Panel rows hold x + 128: xor gives the signed bytes; missing blocks are 0.
    const __m512i a = _mm512_maskz_mov_epi8(m0, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m0, at), bias));
    const __m512i b = _mm512_maskz_mov_epi8(m1, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m1, at + 64), bias));
    xs[j] = split_quad(a, b);
    start[j] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xs[j].lo), offset, xs[j].hi));
  }
  for (int l = 0; l < kPanelW; ++l) {
    if (l >= t.n_w) {
      sums[l] = _mm512_setzero_si512();
      continue;
    }
    const Block* wb = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(t.w) + l * t.w_stride);
    // The row's next 16 blocks, while these are summed: 16 rows are too many streams for the
    // hardware prefetchers, and reading the panel ahead (stream_in) would not overlap the sums.
    // Hints past the row's end are harmless.
    const char* next = reinterpret_cast<const char*>(wb + g0 + 16);
    for (size_t at = 0; at < 16 * sizeof(Block); at += 64) _mm_prefetch(next + at, _MM_HINT_T0);
    __m512i dp[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const Quad w = gn == 16 ? load_quad<true>(wb, g0 + 4 * j, 4) : load_quad<false>(wb, g0 + 4 * j, std::clamp(gn - 4 * j, 0, 4));
      dp[j] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start[j], w.lo, xs[j].lo), w.hi, xs[j].hi);
    }
    sums[l] = block_sums(dp);
  }
  transpose_dwords(sums);
}

// One panel (n_w <= kPanelW rows) against one activation row, chunks of `chunk` blocks: the
// f32 steps of panel_rows_q8_0 on the sums above. Lane l of the scales: row l's f16 d (a masked
// gather; the dword read ends inside the block).
template <typename Block>
void one_row_q8_0(const TileArgs& t, int chunk) {
  static_assert(kChunkBlocks % 32 == 0 && (kChunkBlocks & (kChunkBlocks - 1)) == 0, "chunks of 16 or 32 k blocks");
  const int64_t in_chunk = chunk - 1;  // b & in_chunk: b's place in its chunk
  const int64_t nb = t.n / quant::kQK;
  const uint8_t* xq = static_cast<const uint8_t*>(t.x);
  const float* xd = reinterpret_cast<const float*>(xq + t.n);
  const __mmask16 live = static_cast<__mmask16>((1u << t.n_w) - 1);
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(t.w_stride)));
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g0 = 0; g0 < nb; g0 += 16) {
    const int gn = static_cast<int>(std::min<int64_t>(16, nb - g0));
    __m512i sums[16];
    row_block_sums<Block>(t, xq, g0, gn, sums);
    for (int i = 0; i < gn; ++i) {
      const int64_t b = g0 + i;
      if ((b & in_chunk) == 0) acc = _mm512_setzero_ps();
      const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, rows,
                                                    static_cast<const uint8_t*>(t.w) + b * sizeof(Block), 1);
      const __m512 wd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
      const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(sums[4 * (i % 4) + i / 4]), _mm512_set1_ps(xd[b]));
      acc = _mm512_fmadd_ps(v, wd, acc);
      if (((b + 1) & in_chunk) != 0 && b + 1 != nb) continue;
      const __m512 prev = b < chunk ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(live, t.y);
      _mm512_mask_storeu_ps(t.y, live, b < chunk ? acc : _mm512_add_ps(acc, prev));
    }
  }
}

// Q4_0 and Q8_0, up to 2 kPanelW rows. Over kPanelW rows, two panels per activation pass: each
// broadcast activation then feeds two vpdpbusd (12-17% faster on 512 rows than one panel),
// with chunks half as long so that both packed panels stay in L1. One activation row takes the
// path above, with the chunks its panel call would have.
template <typename Block, typename Pack>
void run_panel_q8_0(const TileArgs& t, Pack pack) {
  const int chunk = t.n_w <= kPanelW ? kChunkBlocks : kChunkBlocks / 2;
  if (t.n_x == 1) {
    for (int p = 0; p * kPanelW < t.n_w; ++p) {
      TileArgs one = t;
      one.w = static_cast<const uint8_t*>(t.w) + p * kPanelW * t.w_stride;
      one.y = t.y + p * kPanelW;
      one.n_w = std::min(kPanelW, t.n_w - p * kPanelW);
      one_row_q8_0<Block>(one, chunk);
    }
    return;
  }
  const auto rows = [&]<int NP>(auto nx, const TileArgs (&ts)[NP], const PackedBlock* const (&pk)[NP], auto... a) {
    panel_rows_q8_0<NP, nx()>(ts, pk, a...);
  };
  if (t.n_w <= kPanelW) return run_panel<1, kChunkBlocks, kPanelX, PackedBlock, Block>(t, quant::kQK, pack, rows);
  run_panel<2, kChunkBlocks / 2, kPanelX2, PackedBlock, Block>(t, quant::kQK, pack, rows);
}

// ---- F16 x F16 and BF16 x BF16 ------------------------------------------------------------------
// Products of f16 (and of bf16) values are exact in f32, so the panel sums what the dot sums (f32 FMAs of f16 x
// f16 products; only the order differs). The weights are widened to f32 lanes (row l in lane l),
// each activation row's chunk is widened once per pass, and an element of 16 rows is one FMA
// with the activation broadcast from memory: no horizontal sums. Over 16 rows, two panels share
// each broadcast (one load feeds two FMAs): with one panel the loads, one per FMA, were the limit.
// Every output's sum runs in the same order (a chunk's elements in order, chunks added to y in
// order) whatever the panels and rows of the call: batch invariance holds.

constexpr int kChunkF16 = 128;   // elements per chunk: 8 KiB of packed weights per panel
constexpr int kPanelXF16 = 16;   // activation rows per register pass, one panel
constexpr int kPanelX2F16 = 12;  // with two panels: 24 accumulators

struct Half8 {
  uint16_t v[8];
};

// The two 16-bit values in each dword of p, as f32: the low ones (lo) or the high ones. F16 by
// vcvtph2ps; BF16 is the top half of an f32.
template <bool kBf16>
inline __m512 widen_halves(__m512i p, bool lo) {
  if constexpr (kBf16) {
    return _mm512_castsi512_ps(lo ? _mm512_slli_epi32(p, 16) : _mm512_and_si512(p, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  } else {
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(lo ? p : _mm512_srli_epi32(p, 16)));
  }
}

// 16 consecutive 16-bit values at p, as f32.
template <bool kBf16>
inline __m512 widen16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (kBf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

// Elements [e0, e0 + count) (multiples of 8) of the 16 rows, widened: out[k] lane l = row l's e0 + k.
template <bool kBf16>
void pack_f16(const TileArgs& t, int64_t e0, int count, __m512* out) {
  const Half8* rows[kPanelW];
  panel_rows(t, e0 / 8, rows);
  for (int k = 0; k < count / 8; ++k) {
    __m512i p[4];  // lane l: row l's elements 2j, 2j + 1 of these 8
    transpose_16x16(rows, k, 0, p);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      out[8 * k + 2 * j] = widen_halves<kBf16>(p[j], true);
      out[8 * k + 2 * j + 1] = widen_halves<kBf16>(p[j], false);
    }
  }
}

template <bool kBf16, int NP, int NX>
void panel_rows_f16(const TileArgs (&t)[NP], const __m512* const (&pk)[NP], int64_t e0, int count, int r0, bool first) {
  alignas(64) float xf[NX][kChunkF16];
#pragma GCC unroll 16
  for (int r = 0; r < NX; ++r) {
    const auto* x = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(t[0].x) + (r0 + r) * t[0].x_stride) + e0;
    for (int i = 0; i < count; i += 16) _mm512_store_ps(xf[r] + i, widen16<kBf16>(x + i));
  }
  __m512 acc[NP][NX];
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 16
    for (int r = 0; r < NX; ++r) acc[p][r] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int k = 0; k < count; ++k) {
    __m512 w[NP];
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) w[p] = _mm512_load_ps(&pk[p][k]);
#pragma GCC unroll 16
    for (int r = 0; r < NX; ++r) {
      const __m512 x = _mm512_set1_ps(xf[r][k]);
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) acc[p][r] = _mm512_fmadd_ps(w[p], x, acc[p][r]);
    }
  }
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p) store_rows(t[p], acc[p], r0, first);
}

// F16 or BF16 weights against activations of the same type.
template <bool kBf16>
void panel_half(const TileArgs& t) {
  static_assert(kChunkF16 % 16 == 0);
  const int64_t n16 = t.n / 16 * 16;
  TileArgs whole = t;  // run_panel's "blocks" are elements here, the whole vectors of 16
  whole.n = n16;
  const auto rows = [&]<int NP>(auto nx, const TileArgs (&ts)[NP], const __m512* const (&pk)[NP], auto... a) {
    panel_rows_f16<kBf16, NP, nx()>(ts, pk, a...);
  };
  if (t.n_w <= kPanelW) {
    run_panel<1, kChunkF16, kPanelXF16, __m512, uint16_t>(whole, 1, pack_f16<kBf16>, rows);
  } else {
    run_panel<2, kChunkF16, kPanelX2F16, __m512, uint16_t>(whole, 1, pack_f16<kBf16>, rows);
  }
  if (n16 == t.n) return;
  // The last n % 16 elements, one product at a time (y holds the sums of the rest, if any).
  const auto widen = [](uint16_t h) { return kBf16 ? quant::bf16_to_f32(h) : quant::f16_to_f32(h); };
  for (int r = 0; r < t.n_x; ++r) {
    const auto* x = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(t.x) + r * t.x_stride);
    for (int l = 0; l < t.n_w; ++l) {
      const auto* w = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(t.w) + l * t.w_stride);
      float sum = n16 == 0 ? 0.0f : t.y[r * t.y_stride + l];
      for (int64_t i = n16; i < t.n; ++i) sum += widen(w[i]) * widen(x[i]);
      t.y[r * t.y_stride + l] = sum;
    }
  }
}

}  // namespace

void panel_f16_f16_avx512(const TileArgs& t) { panel_half<false>(t); }
void panel_bf16_bf16_avx512(const TileArgs& t) { panel_half<true>(t); }

void panel_q4_0_q8_0_avx512(const TileArgs& t) { run_panel_q8_0<BlockQ4_0>(t, pack_q4_0); }

// The packed layout of W (kernels.h), a block of 16 rows at a time: the panel's transpose is it.
void pack_q4_0_avx512(const void* w, int64_t n_out, int64_t n_in, void* out) {
  const int64_t nb = n_in / quant::kQK;
  const size_t row_bytes = static_cast<size_t>(nb) * sizeof(BlockQ4_0);
  for (int64_t g = 0; g < n_out / kPanelW; ++g) {
    const TileArgs t{.n = n_in, .w = static_cast<const uint8_t*>(w) + g * kPanelW * row_bytes, .w_stride = row_bytes,
                     .n_w = kPanelW};
    const BlockQ4_0* rows[kPanelW];
    panel_rows(t, 0, rows);
    uint8_t* quants = static_cast<uint8_t*>(out) + g * kPanelW * row_bytes;
    uint8_t* scales = quants + nb * 256;
    for (int64_t b = 0; b < nb; ++b) {
      __m512i p[4];
      transpose_16x16(rows, static_cast<int>(b), offsetof(BlockQ4_0, qs), p);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) _mm512_storeu_si512(quants + b * 256 + 64 * j, p[j]);
      alignas(32) uint16_t d[kPanelW];
#pragma GCC unroll 16
      for (int l = 0; l < kPanelW; ++l) std::memcpy(&d[l], &rows[l][b].d, 2);
      std::memcpy(scales + b * 32, d, 32);
    }
  }
}

// Packed Q4_0: every activation row count through the panel rows (decode has its own kernel).
void packed_panel_q4_0_q8_0_avx512(const TileArgs& t) {
  const auto rows = [&]<int NP>(auto nx, const TileArgs (&ts)[NP], const PackedBlock* const (&pk)[NP], auto... a) {
    panel_rows_q8_0<NP, nx()>(ts, pk, a...);
  };
  if (t.n_w <= kPanelW) return run_panel<1, kChunkBlocks, kPanelX, PackedBlock, BlockQ4_0>(t, quant::kQK, pack_q4_0_packed, rows);
  run_panel<2, kChunkBlocks / 2, kPanelX2, PackedBlock, BlockQ4_0>(t, quant::kQK, pack_q4_0_packed, rows);
}
void panel_q8_0_q8_0_avx512(const TileArgs& t) { run_panel_q8_0<BlockQ8_0>(t, pack_q8_0); }

namespace {
// The K-quant row kernel on run_panel's single panel.
template <typename Packed>
constexpr auto rows_q8_K = [](auto nx, const TileArgs (&ts)[1], const Packed* const (&pk)[1], auto... a) {
  panel_rows_q8_K<nx(), Packed>(ts[0], pk[0], a...);
};
}  // namespace

void panel_q4_K_q8_K_avx512(const TileArgs& t) {
  run_panel<1, kChunkBlocksK, kPanelXK, PackedQ4_K, BlockQ4_K>(t, quant::kQK_K, pack_q4_K, rows_q8_K<PackedQ4_K>);
}
void panel_q6_K_q8_K_avx512(const TileArgs& t) {
  run_panel<1, kChunkBlocksK, kPanelXK, PackedQ6_K, quant::BlockQ6_K>(t, quant::kQK_K, pack_q6_K, rows_q8_K<PackedQ6_K>);
}

}  // namespace owl::kernels
