// AVX-512 register tiles (TileFn): NW weight rows x NX activation rows per call, on the GGUF
// block layout in place. Each weight vector is decoded once for NX rows and each activation
// vector once for NW rows; the NW x NX dot products are reduced together at the end.
//
// Quantized types (VNNI): vpdpbusd takes unsigned x signed bytes, so weights are made unsigned
// (Q4_0: the nibble q itself; Q8_0: w + 128) and the offset is taken off per activation block
// by starting the int32 accumulator at -offset * sum(x) (sum(x) by vpdpbusd, shared by the NW
// rows). The f16 scales of 16 blocks are converted together per row and their products d_w d_x
// formed by one multiply per (row, row) pair; a permute spreads them over each step's lanes.
// Tiles prefetch the next tile's rows (see prefetch_next_tile).
// Integer block sums are exact: only the f32 scaling and summation order differ from the
// references in ref/dot_ref.cpp.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/avx512/avx512.h"
#include "kernels/ref/ref.h"
#include "quant/blocks.h"

namespace owl::kernels {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ4_K;
using quant::BlockQ8_0;
using quant::BlockQ8_K;

// Calls f(integral_constant NW, integral_constant NX) for n_w, n_x in [1, 4].
template <typename F>
inline void by_tile(int n_w, int n_x, F&& f) {
  auto with_x = [&](auto nw) {
    switch (n_x) {
      case 1: f(nw, std::integral_constant<int, 1>{}); break;
      case 2: f(nw, std::integral_constant<int, 2>{}); break;
      case 3: f(nw, std::integral_constant<int, 3>{}); break;
      default: f(nw, std::integral_constant<int, 4>{}); break;
    }
  };
  switch (n_w) {
    case 1: with_x(std::integral_constant<int, 1>{}); break;
    case 2: with_x(std::integral_constant<int, 2>{}); break;
    case 3: with_x(std::integral_constant<int, 3>{}); break;
    default: with_x(std::integral_constant<int, 4>{}); break;
  }
}

template <int NW, int NX>
inline void store_tile(const TileArgs& t, __m512 (&acc)[NW][NX]) {
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) {
  #pragma GCC unroll 4
    for (int o = 0; o < NW; ++o) t.y[r * t.y_stride + o] = _mm512_reduce_add_ps(acc[o][r]);
  }
}

inline const uint8_t* row(const void* base, size_t stride, int i) {
  return static_cast<const uint8_t*>(base) + i * stride;
}

// How a tile meets one activation row (decode of one sequence: W streams from memory once).
// kQuads: in groups of kTileW weight rows, like more activation rows. kSingleRows: one weight
// row at a time, so W is read as one sequential stream instead of kTileW interleaved ones. The
// interleaved streams (each a 2-8 KiB row) read 5632x2048 F16, BF16 and Q8_0 at 34 GB/s where
// one stream reads 41-45 (the machine's sequential read rate); Q4_K gains a little. Q4_0 keeps
// its quads: one row at a time its compute limit (35 GB/s from cache) is below the bandwidth.
enum class OneActivationRow { kQuads, kSingleRows };

// f(quad, NW, NX) on each group of up to kTileW weight rows of t (single rows, see above).
template <OneActivationRow kOne = OneActivationRow::kQuads, typename F>
inline void for_weight_quads(const TileArgs& t, F&& f) {
  if (kOne == OneActivationRow::kSingleRows && t.n_x == 1) {
    for (int o = 0; o < t.n_w; ++o) {
      TileArgs q = t;
      q.w = row(t.w, t.w_stride, o);
      q.y = t.y + o;
      q.n_w = 1;
      f(q, std::integral_constant<int, 1>{}, std::integral_constant<int, 1>{});
    }
    return;
  }
  for (int o = 0; o < t.n_w; o += kTileW) {
    TileArgs q = t;
    q.w = row(t.w, t.w_stride, o);
    q.y = t.y + o;
    q.n_w = std::min(kTileW, t.n_w - o);
    by_tile(q.n_w, q.n_x, [&](auto nw, auto nx) { f(q, nw, nx); });
  }
}

// The weight rows of a tile are NW interleaved streams, each a new 4 KiB page or so, which the
// hardware prefetchers learn too late: fetch the same bytes of the next tile (the next NW rows,
// contiguous with these) ahead. Prefetches past the end of W are harmless hints. A decode step
// of 3 or 4 sequences needs them as much as one of 1 or 2 (it read W at half the rate without);
// in prefill the lines are in L2 already and the hints cost little. Single rows fetch the next
// row, one row ahead of the sequential stream.
template <int NW, int NX>
inline void prefetch_next_tile(const TileArgs& t, size_t offset) {
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) _mm_prefetch(reinterpret_cast<const char*>(row(t.w, t.w_stride, o + NW) + offset), _MM_HINT_T0);
}

// The f16 scales at byte offset 0 of blocks [b0, b0 + count) of `block_bytes` each, as f32
// (lanes >= count are 0): one masked gather of the dwords there. Sixteen 2-byte copies into a
// vector that is loaded right away cost a failed store-to-load forward on every call.
inline __m512 gather_scales(const uint8_t* blocks, int64_t b0, int count, int block_bytes) {
  const __m512i at = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                        _mm512_set1_epi32(block_bytes));
  const __mmask16 m = count >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << count) - 1);
  const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, at, blocks + b0 * block_bytes, 1);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
}

// ---- float weights: F16 x F16 (vcvtph2ps + FMA), BF16 x BF16 (vdpbf16ps) ----------------

// One step of 16 (f16) or 32 (bf16) elements at i; m masks the row's tail. Kept a plain
// function on register arrays (a capturing lambda made GCC keep the accumulators in memory).
template <int NW, int NX>
inline void f16_step(const TileArgs& t, int64_t i, __mmask16 m, __m512 (&acc)[NW][NX]) {
  __m512 xv[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) {
    xv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row(t.x, t.x_stride, r)) + i));
  }
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) {
    const __m512 wv =
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row(t.w, t.w_stride, o)) + i));
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) acc[o][r] = _mm512_fmadd_ps(wv, xv[r], acc[o][r]);
  }
}

template <int NW, int NX>
void tile_f16_nx(const TileArgs& t) {
  __m512 acc[NW][NX];
  for (auto& a : acc) for (auto& v : a) v = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= t.n; i += 32) {
    prefetch_next_tile<NW, NX>(t, 2 * static_cast<size_t>(i));
    f16_step<NW, NX>(t, i, 0xFFFF, acc);
    f16_step<NW, NX>(t, i + 16, 0xFFFF, acc);
  }
  for (; i < t.n; i += 16) f16_step<NW, NX>(t, i, t.n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (t.n - i)) - 1), acc);
  store_tile<NW, NX>(t, acc);
}

// vdpbf16ps: acc += w[2i] x[2i] + w[2i+1] x[2i+1] per lane; bf16 products are exact in f32.
template <int NW, int NX>
inline void bf16_step(const TileArgs& t, int64_t i, __mmask32 m, __m512 (&acc)[NW][NX]) {
  __m512bh xv[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) {
    xv[r] = (__m512bh)_mm512_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row(t.x, t.x_stride, r)) + i);
  }
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) {
    const __m512bh wv =
        (__m512bh)_mm512_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row(t.w, t.w_stride, o)) + i);
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) acc[o][r] = _mm512_dpbf16_ps(acc[o][r], wv, xv[r]);
  }
}

template <int NW, int NX>
void tile_bf16_nx(const TileArgs& t) {
  __m512 acc[NW][NX];
  for (auto& a : acc) for (auto& v : a) v = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= t.n; i += 32) {
    prefetch_next_tile<NW, NX>(t, 2 * static_cast<size_t>(i));
    bf16_step<NW, NX>(t, i, 0xFFFFFFFFu, acc);
  }
  if (i < t.n) bf16_step<NW, NX>(t, i, static_cast<__mmask32>((1ull << (t.n - i)) - 1), acc);
  store_tile<NW, NX>(t, acc);
}

// ---- 32-element blocks against Q8_0: Q8_0 and Q4_0 --------------------------------------

// scale[o][r], lane i: d_w d_x of block g0 + i of weight row o and activation row r, for the
// gn <= 16 blocks [g0, g0 + gn) (a weight block with its f16 scale first, as Q4_0 and Q8_0).
template <int NW, int NX, typename WBlock>
inline void scale_products(const WBlock* const (&wb)[NW], const BlockQ8_0* const (&xb)[NX], int64_t g0, int gn,
                           __m512 (&scale)[NW][NX]) {
  __m512 dx[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) dx[r] = gather_scales(reinterpret_cast<const uint8_t*>(xb[r]), g0, gn, sizeof(BlockQ8_0));
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) {
    const __m512 dw = gather_scales(reinterpret_cast<const uint8_t*>(wb[o]), g0, gn, sizeof(WBlock));
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) scale[o][r] = _mm512_mul_ps(dw, dx[r]);
  }
}
//
// Q8_0: a block pair (b, b + 1) fills one zmm, [block b | block b + 1] on both sides, and
// pair_scale_index(k) spreads the scale products of 16 blocks over the int32 lanes of pair k.

inline __m512i pair_scale_index(int k) {
  const int a = 2 * k, b = 2 * k + 1;
  return _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
}

// The activations of blocks (b, b + 1) of one Q8_0 row; `two` false: block b only (the other
// half zero).
inline __m512i load_x_pair(const BlockQ8_0* xb, int64_t b, bool two) {
  const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b].qs));
  const __m256i x1 = two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b + 1].qs)) : _mm256_setzero_si256();
  return _mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1);
}

inline __m512i load_w_pair(const BlockQ8_0* wb, int64_t b, bool two) {
  const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[b].qs));
  const __m256i q1 = two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[b + 1].qs)) : _mm256_setzero_si256();
  // w + 128 as unsigned (a missing block's activations are 0, so its bytes do not matter).
  const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
  return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
}

// w = d q, stored as q + 128 (unsigned), offset 128.
template <int NW, int NX>
void tile_q8_0_nx(const TileArgs& t) {
  using WBlock = BlockQ8_0;
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));
  const int64_t nb = t.n / quant::kQK;
  const WBlock* wb[NW];
  const BlockQ8_0* xb[NX];
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) wb[o] = reinterpret_cast<const WBlock*>(row(t.w, t.w_stride, o));
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) xb[r] = reinterpret_cast<const BlockQ8_0*>(row(t.x, t.x_stride, r));
  __m512 acc[NW][NX];
  for (auto& a : acc) for (auto& v : a) v = _mm512_setzero_ps();

  for (int64_t g0 = 0; g0 < nb; g0 += 16) {
    const int gn = static_cast<int>(std::min<int64_t>(16, nb - g0));
    __m512 scale[NW][NX];
    scale_products<NW, NX>(wb, xb, g0, gn, scale);
    for (int k = 0; 2 * k < gn; ++k) {
      const int64_t b = g0 + 2 * k;
      const bool two = 2 * k + 1 < gn;
      prefetch_next_tile<NW, NX>(t, b * sizeof(WBlock));
      if constexpr (sizeof(WBlock) * 2 > 64) prefetch_next_tile<NW, NX>(t, b * sizeof(WBlock) + 64);
      __m512i xq[NX], start[NX];
    #pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) {
        xq[r] = load_x_pair(xb[r], b, two);
        start[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xq[r]));
      }
      const __m512i spread = pair_scale_index(k);
    #pragma GCC unroll 4
      for (int o = 0; o < NW; ++o) {
        const __m512i wq = load_w_pair(wb[o], b, two);
      #pragma GCC unroll 4
        for (int r = 0; r < NX; ++r) {
          const __m512 dp = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start[r], wq, xq[r]));
          acc[o][r] = _mm512_fmadd_ps(dp, _mm512_permutexvar_ps(spread, scale[o][r]), acc[o][r]);
        }
      }
    }
  }
  store_tile<NW, NX>(t, acc);
}

// Q4_0 (w = d (q - 8), offset 8), four blocks at a time: the low nibbles of blocks b..b+3 fill one zmm (16 bytes each),
// the high nibbles another, and the two vpdpbusd land in the same int32 lanes (lanes 4k..4k+3:
// block b + k), so each (weight row, activation row) pair costs one convert, one permute and
// one FMA per 128 weights.
struct Q4Quad {
  __m512i lo, hi;
};

template <bool kFull>
inline Q4Quad load_w_quad(const BlockQ4_0* wb, int64_t b, int count) {
  __m512i v = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].qs)));
#pragma GCC unroll 3
  for (int k = 1; k < 4; ++k) {
    if (kFull || k < count) {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b + k].qs));
      switch (k) {
        case 1: v = _mm512_inserti32x4(v, q, 1); break;
        case 2: v = _mm512_inserti32x4(v, q, 2); break;
        default: v = _mm512_inserti32x4(v, q, 3); break;
      }
    }
  }
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  return {_mm512_and_si512(v, m4), _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)};
}

// The activations of blocks b..b+3 in the same lane order: elements 0..15 of each block, then
// 16..31; blocks at or past `count` are zero.
template <bool kFull>
inline Q4Quad load_x_quad(const BlockQ8_0* xb, int64_t b, int count) {
  __m256i q[4];
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    q[k] = kFull || k < count ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b + k].qs)) : _mm256_setzero_si256();
  }
  const __m512i t01 = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);  // [0lo 0hi 1lo 1hi]
  const __m512i t23 = _mm512_inserti64x4(_mm512_castsi256_si512(q[2]), q[3], 1);
  return {_mm512_shuffle_i64x2(t01, t23, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i64x2(t01, t23, _MM_SHUFFLE(3, 1, 3, 1))};
}

template <bool kFull, int NW, int NX>
inline void q4_0_quad(const BlockQ4_0* const* wb, const BlockQ8_0* const* xb, int64_t b, int count, __m512i spread,
                      const __m512 (&scale)[NW][NX], __m512 (&acc)[NW][NX]) {
  const __m512i eight = _mm512_set1_epi8(8);
  Q4Quad xq[NX];
  __m512i start[NX];
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) {
    xq[r] = load_x_quad<kFull>(xb[r], b, count);
    const __m512i sum8 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, xq[r].lo), eight, xq[r].hi);
    start[r] = _mm512_sub_epi32(_mm512_setzero_si512(), sum8);
  }
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) {
    const Q4Quad wq = load_w_quad<kFull>(wb[o], b, count);
#pragma GCC unroll 4
    for (int r = 0; r < NX; ++r) {
      const __m512i dp = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start[r], wq.lo, xq[r].lo), wq.hi, xq[r].hi);
      acc[o][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_permutexvar_ps(spread, scale[o][r]), acc[o][r]);
    }
  }
}

template <int NW, int NX>
void tile_q4_0_nx(const TileArgs& t) {
  const int64_t nb = t.n / quant::kQK;
  const BlockQ4_0* wb[NW];
  const BlockQ8_0* xb[NX];
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) wb[o] = reinterpret_cast<const BlockQ4_0*>(row(t.w, t.w_stride, o));
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) xb[r] = reinterpret_cast<const BlockQ8_0*>(row(t.x, t.x_stride, r));
  __m512 acc[NW][NX];
  for (auto& a : acc) for (auto& v : a) v = _mm512_setzero_ps();
  for (int64_t g0 = 0; g0 < nb; g0 += 16) {
    const int gn = static_cast<int>(std::min<int64_t>(16, nb - g0));
    __m512 scale[NW][NX];
    scale_products<NW, NX>(wb, xb, g0, gn, scale);
    for (int k = 0; 4 * k < gn; ++k) {
      const int64_t b = g0 + 4 * k;
      const int count = std::min(4, gn - 4 * k);
      prefetch_next_tile<NW, NX>(t, b * sizeof(BlockQ4_0));
      prefetch_next_tile<NW, NX>(t, b * sizeof(BlockQ4_0) + 64);
      const __m512i spread = _mm512_add_epi32(_mm512_set1_epi32(4 * k),
                                              _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
      if (count == 4) {
        q4_0_quad<true, NW, NX>(wb, xb, b, count, spread, scale, acc);
      } else {
        q4_0_quad<false, NW, NX>(wb, xb, b, count, spread, scale, acc);
      }
    }
  }
  store_tile<NW, NX>(t, acc);
}

// ---- Q4_K against Q8_K --------------------------------------------------------------------
//
// Chunk c of a super-block (elements 64c .. 64c + 63) is one zmm: low nibbles of qs[32c ..
// 32c + 31] then their high nibbles, the activations' own order. vpmaddubsw makes int16 pairs
// (|q x| <= 15 * 128 * 2 fits), vpdpwssd multiplies by the sub-block scale (words 0..15:
// sub-block 2c, 16..31: 2c + 1) into int32. Mins: sum_j m_j (bsum_2j + bsum_2j+1) by vpmaddwd.

struct K4Scales {
  __m512i sc[4];  // per chunk: sc_2c in words 0..15, sc_2c+1 in words 16..31
  __m256i mins;   // m_j in words 2j, 2j + 1
};

inline K4Scales unpack_k4(const uint8_t* packed) {
  uint32_t u[3];
  std::memcpy(u, packed, 12);
  constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
  const uint32_t sc0 = u[0] & k6, m0 = u[1] & k6;
  const uint32_t sc1 = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);
  const uint32_t m1 = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);
  const __m128i bytes = _mm_setr_epi32(static_cast<int>(sc0), static_cast<int>(sc1), static_cast<int>(m0), static_cast<int>(m1));
  const __m256i words = _mm256_cvtepu8_epi16(bytes);  // sc_0..7 in words 0..7, m_0..7 in 8..15
  const __m512i w512 = _mm512_castsi256_si512(words);
  K4Scales s;
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const short a = static_cast<short>(2 * c), b = static_cast<short>(2 * c + 1);
    const __m512i idx = _mm512_set_epi16(b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b,
                                         a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a);
    s.sc[c] = _mm512_permutexvar_epi16(idx, w512);
  }
  const __m256i midx = _mm256_setr_epi16(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  s.mins = _mm256_permutexvar_epi16(midx, words);
  return s;
}

template <int NW, int NX>
void tile_q4_K_nx(const TileArgs& t) {
  const int64_t nb = t.n / quant::kQK_K;
  const BlockQ4_K* wb[NW];
  const BlockQ8_K* xb[NX];
#pragma GCC unroll 4
  for (int o = 0; o < NW; ++o) wb[o] = reinterpret_cast<const BlockQ4_K*>(row(t.w, t.w_stride, o));
#pragma GCC unroll 4
  for (int r = 0; r < NX; ++r) xb[r] = reinterpret_cast<const BlockQ8_K*>(row(t.x, t.x_stride, r));
  __m512 acc[NW][NX];
  for (auto& a : acc) for (auto& v : a) v = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    __m512i isum[NW][NX];
    __m256i imin[NW][NX];
    prefetch_next_tile<NW, NX>(t, b * sizeof(BlockQ4_K));
    prefetch_next_tile<NW, NX>(t, b * sizeof(BlockQ4_K) + 64);
    prefetch_next_tile<NW, NX>(t, b * sizeof(BlockQ4_K) + 128);
  #pragma GCC unroll 4
    for (int o = 0; o < NW; ++o) {
      const K4Scales s = unpack_k4(wb[o][b].scales);
    #pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) {
        isum[o][r] = _mm512_setzero_si512();
        imin[o][r] = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[r][b].bsums)), s.mins);
      }
    #pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[o][b].qs + 32 * c));
        const __m512i q = _mm512_and_si512(
            _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
      #pragma GCC unroll 4
        for (int r = 0; r < NX; ++r) {
          const __m512i xq = _mm512_loadu_si512(xb[r][b].qs + 64 * c);
          isum[o][r] = _mm512_dpwssd_epi32(isum[o][r], _mm512_maddubs_epi16(q, xq), s.sc[c]);
        }
      }
    }
  #pragma GCC unroll 4
    for (int o = 0; o < NW; ++o) {
      const float d = _cvtsh_ss(wb[o][b].d), dmin = _cvtsh_ss(wb[o][b].dmin);
    #pragma GCC unroll 4
      for (int r = 0; r < NX; ++r) {
        const float dx = xb[r][b].d;
        acc[o][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[o][r]), _mm512_set1_ps(dx * d), acc[o][r]);
        const __m512 mins = _mm512_cvtepi32_ps(_mm512_zextsi256_si512(imin[o][r]));
        acc[o][r] = _mm512_fnmadd_ps(mins, _mm512_set1_ps(dx * dmin), acc[o][r]);
      }
    }
  }
  store_tile<NW, NX>(t, acc);
}

// ---- Q4_0 in the packed layout (kernels.h, pack_weights) against Q8_0 ----------------------
//
// A group of 16 weight rows is one sequential stream; int32 lane l belongs to row l. Per block,
// each of the four packed vectors gives the low nibbles (elements 4j..4j+3 of every row) and the
// high ones (16+4j..), and one vpdpbusd multiplies them by the activation's 4 bytes broadcast:
// 8 vpdpbusd per block for all 16 rows, with no horizontal sums. The nibbles q are unsigned and
// the activations signed, so the block sum is sum q x - 8 sum x; -8 sum x starts the
// accumulator, computed once per activation block for the call.
constexpr int64_t kPackedAhead = 4096;
constexpr int kPackedPass = 8;  // activation rows per pass over a group (2 x 8 sums and 8 accumulators in registers)

// One group of 16 weight rows against NX activation rows (of a call's up to kPackedRowsMax):
// y[r][l] for row l of the group. offsets and dx: [NX][nb] of these activation rows.
template <int NX>
void packed_group_q4_0(const uint8_t* quants, int64_t nb, const BlockQ8_0* const* xb, const int32_t* offsets,
                       const float* dx, float* y, int64_t y_stride) {
  const uint8_t* scales = quants + nb * 256;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NX];
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* q = quants + b * 256;
    // 4 KiB ahead of both streams (quants and scales at the same pace); past the group this
    // fetches the next group's first bytes, past W harmless hints. 1, 2 and 8 KiB measured
    // slower, none slower still.
#pragma GCC unroll 8
    for (int l = 0; l < 4; ++l) _mm_prefetch(reinterpret_cast<const char*>(q + kPackedAhead + 64 * l), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(scales + b * 32 + kPackedAhead / 8), _MM_HINT_T0);
    __m512i lo_sum[NX], hi_sum[NX];
#pragma GCC unroll 8
    for (int r = 0; r < NX; ++r) {
      lo_sum[r] = _mm512_set1_epi32(offsets[r * nb + b]);
      hi_sum[r] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int j = 0; j < 4; ++j) {
      const __m512i p = _mm512_loadu_si512(q + 64 * j);
      const __m512i lo = _mm512_and_si512(p, m4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), m4);
#pragma GCC unroll 8
      for (int r = 0; r < NX; ++r) {
        int32_t x_lo, x_hi;
        std::memcpy(&x_lo, xb[r][b].qs + 4 * j, 4);
        std::memcpy(&x_hi, xb[r][b].qs + 16 + 4 * j, 4);
        lo_sum[r] = _mm512_dpbusd_epi32(lo_sum[r], lo, _mm512_set1_epi32(x_lo));
        hi_sum[r] = _mm512_dpbusd_epi32(hi_sum[r], hi, _mm512_set1_epi32(x_hi));
      }
    }
    const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * 32)));
#pragma GCC unroll 8
    for (int r = 0; r < NX; ++r) {
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_add_epi32(lo_sum[r], hi_sum[r]));
      acc[r] = _mm512_fmadd_ps(sum, _mm512_mul_ps(wd, _mm512_set1_ps(dx[r * nb + b])), acc[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < NX; ++r) _mm512_storeu_ps(y + r * y_stride, acc[r]);
}

}  // namespace

void packed_rows_q4_0_q8_0_avx512(const TileArgs& t) {
  const int64_t nb = t.n / quant::kQK;
  thread_local std::vector<int32_t> offsets;  // [n_x][nb] -8 sum x of each activation block
  thread_local std::vector<float> dx;         // [n_x][nb] its scale
  offsets.resize(static_cast<size_t>(t.n_x * nb));
  dx.resize(static_cast<size_t>(t.n_x * nb));
  const BlockQ8_0* xb[kPackedRowsMax];
  const __m256i ones = _mm256_set1_epi8(1);
  for (int r = 0; r < t.n_x; ++r) {
    xb[r] = reinterpret_cast<const BlockQ8_0*>(row(t.x, t.x_stride, r));
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[r][b].qs));
      const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, q);
      offsets[static_cast<size_t>(r * nb + b)] = -8 * _mm512_reduce_add_epi32(_mm512_zextsi256_si512(s));
      dx[static_cast<size_t>(r * nb + b)] = _cvtsh_ss(xb[r][b].d);
    }
  }
  // Each group's 16 rows (18 KiB for 2048 inputs) are read from memory once and, for more than
  // 4 activation rows, again from L1 for every further 4.
  const size_t group_bytes = static_cast<size_t>(kPanelW) * t.w_stride;
  for (int g = 0; g < t.n_w / kPanelW; ++g) {
    const uint8_t* quants = static_cast<const uint8_t*>(t.w) + g * group_bytes;
    for (int r = 0; r < t.n_x; r += kPackedPass) {
      const int32_t* o = offsets.data() + r * nb;
      const float* d = dx.data() + r * nb;
      float* y = t.y + r * t.y_stride + g * kPanelW;
      with_count<kPackedPass>(std::min(kPackedPass, t.n_x - r), [&](auto nx) {
        packed_group_q4_0<nx()>(quants, nb, xb + r, o, d, y, t.y_stride);
      });
    }
  }
}

void tile_f16_f16_avx512(const TileArgs& t) {
  for_weight_quads<OneActivationRow::kSingleRows>(
      t, [&](const TileArgs& q, auto nw, auto nx) { tile_f16_nx<nw(), nx()>(q); });
}
void tile_bf16_bf16_avx512(const TileArgs& t) {
  for_weight_quads<OneActivationRow::kSingleRows>(
      t, [&](const TileArgs& q, auto nw, auto nx) { tile_bf16_nx<nw(), nx()>(q); });
}
void tile_q4_0_q8_0_avx512(const TileArgs& t) {
  for_weight_quads(t, [&](const TileArgs& q, auto nw, auto nx) { tile_q4_0_nx<nw(), nx()>(q); });
}
void tile_q8_0_q8_0_avx512(const TileArgs& t) {
  for_weight_quads<OneActivationRow::kSingleRows>(
      t, [&](const TileArgs& q, auto nw, auto nx) { tile_q8_0_nx<nw(), nx()>(q); });
}
void tile_q4_K_q8_K_avx512(const TileArgs& t) {
  for_weight_quads<OneActivationRow::kSingleRows>(
      t, [&](const TileArgs& q, auto nw, auto nx) { tile_q4_K_nx<nw(), nx()>(q); });
}

// Float dots are one-weight-row tiles.
void dot_f16_f16_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  tile_f16_f16_avx512(TileArgs{.n = n, .w = w, .n_w = 1, .x = x, .x_stride = x_stride, .n_x = n_x, .y = y, .y_stride = 1});
}
void dot_bf16_bf16_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  tile_bf16_bf16_avx512(TileArgs{.n = n, .w = w, .n_w = 1, .x = x, .x_stride = x_stride, .n_x = n_x, .y = y, .y_stride = 1});
}

}  // namespace owl::kernels
