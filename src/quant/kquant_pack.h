// Bit layouts of the K-quant super-blocks, internal to owl_quant (included only by its .cpp
// files): how the reference quantizers (kquants.cpp) and the importance-weighted ones
// (weighted.cpp) store quants and sub-block scales, and how the dequantizers read the quants
// back. The scale readers get_scale_min_k4 / get_scale_q3_k are in quant.h. Layouts as ggml's
// block_q*_K (ggml-common.h) and quantize_row_q*_K_ref (ggml-quants.c).
#pragma once

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"

namespace owl::quant {

// 2-bit packing of Q2_K / Q3_K: each half of 128 elements fills 32 bytes; byte l of the half
// holds elements l, l + 32, l + 64, l + 96 at bits 0, 2, 4, 6.
inline void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int half = 0; half < kQK_K / 128; ++half, L += 128, qs += 32) {
    for (int l = 0; l < 32; ++l) {
      qs[l] = static_cast<uint8_t>(L[l] | (L[l + 32] << 2) | (L[l + 64] << 4) | (L[l + 96] << 6));
    }
  }
}

// 2-bit field of element e (0..255) under pack_2bit.
inline int unpack_2bit(const uint8_t* qs, int e) {
  const int half = e / 128;
  const int r = e % 128;
  return (qs[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
}

// 4-bit packing of Q4_K / Q5_K: each 64 elements fill 32 bytes, element l in the low nibble
// of byte l and element l + 32 in the high nibble.
inline void pack_4bit(const uint8_t* L, uint8_t* qs) {
  for (int chunk = 0; chunk < kQK_K / 64; ++chunk, L += 64, qs += 32) {
    for (int l = 0; l < 32; ++l) qs[l] = static_cast<uint8_t>((L[l] & 0xF) | ((L[l + 32] & 0xF) << 4));
  }
}

inline int unpack_4bit(const uint8_t* qs, int e) {
  const uint8_t byte = qs[(e / 64) * 32 + e % 32];
  return (e % 64) < 32 ? byte & 0xF : byte >> 4;
}

// Stores the 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block as
// get_scale_min_k4 reads them. Sub-blocks 0..3 must be stored before 4..7 (these OR into
// bytes 0..7).
inline void put_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* packed) {
  if (j < 4) {
    packed[j] = ls;
    packed[j + 4] = lm;
  } else {
    packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
    packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
  }
}

// Stores the 6-bit scale s (0..63) of sub-block j (0..15) of a Q3_K super-block as
// get_scale_q3_k reads it; the 12 bytes start zeroed.
inline void put_scale_q3_k(int j, int s, uint8_t* packed) {
  if (j < 8) {
    packed[j] = static_cast<uint8_t>(s & 0xF);
  } else {
    packed[j - 8] |= static_cast<uint8_t>((s & 0xF) << 4);
  }
  packed[8 + j % 4] |= static_cast<uint8_t>((s >> 4) << (2 * (j / 4)));
}

// Q3_K quants L [256] in 0..7: the third bit of element e goes to bit e / 32 of hmask[e % 32],
// the low 2 bits to qs.
inline void pack_q3_k(const int8_t* L, BlockQ3_K& y) {
  std::memset(y.hmask, 0, sizeof(y.hmask));
  uint8_t low[kQK_K];
  for (int e = 0; e < kQK_K; ++e) {
    int q = L[e];
    if (q > 3) {
      y.hmask[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
      q -= 4;
    }
    low[e] = static_cast<uint8_t>(q);
  }
  pack_2bit(low, y.qs);
}

// Q5_K quants L [256] in 0..31 (changed in place): bit 4 of element e goes to bit e / 32 of
// qh[e % 32]; the low 4 bits pack as Q4_K.
inline void pack_q5_k(uint8_t* L, BlockQ5_K& y) {
  std::memset(y.qh, 0, sizeof(y.qh));
  for (int e = 0; e < kQK_K; ++e) {
    if (L[e] > 15) {
      y.qh[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
      L[e] = static_cast<uint8_t>(L[e] - 16);
    }
  }
  pack_4bit(L, y.qs);
}

// Q6_K quants L [256] in 0..63: per half of 128 elements, ql holds the low nibbles (64 bytes:
// element l and l + 64 share byte l, l + 32 and l + 96 share byte l + 32) and qh the high 2
// bits (32 bytes: elements l, l + 32, l + 64, l + 96 at bits 0, 2, 4, 6 of byte l).
inline void pack_q6_k(const int8_t* L, BlockQ6_K& y) {
  uint8_t* ql = y.ql;
  uint8_t* qh = y.qh;
  for (int half = 0; half < kQK_K / 128; ++half, L += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((L[l] & 0xF) | ((L[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((L[l + 32] & 0xF) | ((L[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) |
                                   ((L[l + 96] >> 4) << 6));
    }
  }
}

inline int unpack_q6_k(const BlockQ6_K& x, int e) {
  const int half = e / 128;
  const int r = e % 128;
  const int quarter = r / 32;  // which of the four 32-element rows inside the half
  const int l = r % 32;
  const uint8_t low_byte = x.ql[half * 64 + l + 32 * (quarter & 1)];
  const int low = quarter < 2 ? low_byte & 0xF : low_byte >> 4;
  const int high = (x.qh[half * 32 + l] >> (2 * quarter)) & 3;
  return low | (high << 4);
}

}  // namespace owl::quant
