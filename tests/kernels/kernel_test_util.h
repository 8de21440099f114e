// Test helpers for kernels: seeded inputs, the ISAs this CPU runs, and an fp64 decoder of
// every weight format written independently of kernels/ref (following ggml's dequantize
// loops) that also splits each weight into its scale part a and min part b (w = a - b), so
// tolerances can be derived from sum |a x| + |b x|.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "quant/half.h"

namespace owl::kernels::test {

using quant::f16_to_f32;
using quant::f32_to_f16;

inline std::vector<Isa> available_isas() {
  const CpuFeatures f = detect_cpu_features();
  std::vector<Isa> isas{Isa::kScalar};
  if (f.avx2) isas.push_back(Isa::kAvx2);
  if (f.avx512 && f.avx512_vnni) isas.push_back(Isa::kAvx512);
  return isas;
}

inline constexpr float kEps = 1.1920929e-7f;  // 2^-23, f32 unit roundoff x 2

// Weight contents: random values at a scale, all zeros, or scales at the format's extremes.
enum class Fill { kRandom, kZeros, kHuge, kTiny };

struct Decoded {
  std::vector<double> a;  // scale part of each weight
  std::vector<double> b;  // min part (w = a - b); 0 for formats without mins
};

// Fills a row of n weights of `type` (bytes are random; scale fields are set to finite f16s).
inline std::vector<uint8_t> make_weight_row(TensorType type, int64_t n, Fill fill, std::mt19937& rng) {
  const int64_t bytes = gguf::row_bytes(type, n);
  std::vector<uint8_t> row(static_cast<size_t>(bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unif(0.5f, 1.0f);
  const float scale = fill == Fill::kHuge ? 3.0e4f : fill == Fill::kTiny ? 1.0e-7f : 0.02f;
  if (fill == Fill::kZeros) return row;
  auto put16 = [&](size_t off, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(row.data() + off, &h, 2);
  };
  switch (type) {
    case TensorType::F32: {
      for (int64_t i = 0; i < n; ++i) {
        const float v = normal(rng) * (fill == Fill::kHuge ? 1.0e4f : fill == Fill::kTiny ? 1e-6f : 1.0f);
        std::memcpy(row.data() + 4 * i, &v, 4);
      }
      return row;
    }
    case TensorType::F16:
    case TensorType::BF16: {
      for (int64_t i = 0; i < n; ++i) {
        const float v = normal(rng) * (fill == Fill::kHuge ? 1.0e4f : fill == Fill::kTiny ? 1e-5f : 1.0f);
        const uint16_t h = type == TensorType::F16 ? f32_to_f16(v) : quant::f32_to_bf16(v);
        std::memcpy(row.data() + 2 * i, &h, 2);
      }
      return row;
    }
    default: break;
  }
  for (auto& c : row) c = static_cast<uint8_t>(byte(rng));
  const gguf::TensorTypeInfo& info = gguf::type_info(type);
  for (int64_t blk = 0; blk < n / info.block_size; ++blk) {
    const size_t base = static_cast<size_t>(blk * info.type_size);
    switch (type) {
      case TensorType::Q4_1:
      case TensorType::Q5_1:
        put16(base, scale * unif(rng));
        put16(base + 2, -scale * (fill == Fill::kHuge ? 1.0f : 8.0f) * unif(rng));  // stays finite
        break;
      case TensorType::Q4_0:
      case TensorType::Q5_0:
      case TensorType::Q8_0: put16(base, scale * unif(rng)); break;
      case TensorType::Q2_K:
        put16(base + offsetof(quant::BlockQ2_K, d), scale * unif(rng));
        put16(base + offsetof(quant::BlockQ2_K, dmin), scale * unif(rng));
        break;
      case TensorType::Q3_K: put16(base + offsetof(quant::BlockQ3_K, d), scale * unif(rng)); break;
      case TensorType::Q4_K:
      case TensorType::Q5_K:
        put16(base, scale * unif(rng));
        put16(base + 2, scale * unif(rng));
        break;
      case TensorType::Q6_K: put16(base + offsetof(quant::BlockQ6_K, d), scale * unif(rng)); break;
      case TensorType::Q8_K: {
        const float d = scale * unif(rng);
        std::memcpy(row.data() + base, &d, 4);
        break;
      }
      default: break;
    }
  }
  return row;
}

// ggml's 6-bit scale/min pair j of Q4_K/Q5_K (get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* q, int* d, int* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// fp64 decode of one row in ggml's dequantize_row_* loop order.
inline Decoded decode_row(TensorType type, const uint8_t* src, int64_t n) {
  Decoded out;
  out.a.assign(static_cast<size_t>(n), 0.0);
  out.b.assign(static_cast<size_t>(n), 0.0);
  double* a = out.a.data();
  double* b = out.b.data();
  using namespace owl::quant;
  switch (type) {
    case TensorType::F32:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, src + 4 * i, 4);
        a[i] = v;
      }
      break;
    case TensorType::F16:
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        a[i] = type == TensorType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      break;
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q5_0:
    case TensorType::Q5_1:
      for (int64_t blk = 0; blk < n / 32; ++blk) {
        const gguf::TensorTypeInfo& info = gguf::type_info(type);
        const uint8_t* p = src + blk * info.type_size;
        uint16_t dh, mh = 0;
        std::memcpy(&dh, p, 2);
        const bool has_min = type == TensorType::Q4_1 || type == TensorType::Q5_1;
        if (has_min) std::memcpy(&mh, p + 2, 2);
        const bool five = type == TensorType::Q5_0 || type == TensorType::Q5_1;
        uint32_t qh = 0;
        if (five) std::memcpy(&qh, p + (has_min ? 4 : 2), 4);
        const uint8_t* qs = p + (has_min ? 4 : 2) + (five ? 4 : 0);
        const double d = f16_to_f32(dh), m = has_min ? f16_to_f32(mh) : 0.0;
        const int offset = has_min ? 0 : five ? 16 : 8;
        for (int j = 0; j < 16; ++j) {
          const int h0 = five ? ((qh >> j) & 1) << 4 : 0;
          const int h1 = five ? ((qh >> (j + 16)) & 1) << 4 : 0;
          a[blk * 32 + j] = d * (((qs[j] & 0xF) | h0) - offset);
          a[blk * 32 + j + 16] = d * (((qs[j] >> 4) | h1) - offset);
          b[blk * 32 + j] = -m;
          b[blk * 32 + j + 16] = -m;
        }
      }
      break;
    case TensorType::Q8_0:
      for (int64_t blk = 0; blk < n / 32; ++blk) {
        const BlockQ8_0* p = reinterpret_cast<const BlockQ8_0*>(src) + blk;
        for (int j = 0; j < 32; ++j) a[blk * 32 + j] = static_cast<double>(f16_to_f32(p->d)) * p->qs[j];
      }
      break;
    case TensorType::Q8_1:  // activations: {d, s, qs}
      for (int64_t blk = 0; blk < n / 32; ++blk) {
        const BlockQ8_1* p = reinterpret_cast<const BlockQ8_1*>(src) + blk;
        for (int j = 0; j < 32; ++j) a[blk * 32 + j] = static_cast<double>(f16_to_f32(p->d)) * p->qs[j];
      }
      break;
    case TensorType::Q8_K:
      for (int64_t blk = 0; blk < n / 256; ++blk) {
        const BlockQ8_K* p = reinterpret_cast<const BlockQ8_K*>(src) + blk;
        for (int j = 0; j < 256; ++j) a[blk * 256 + j] = static_cast<double>(p->d) * p->qs[j];
      }
      break;
    case TensorType::Q2_K:
      for (int64_t blk = 0; blk < n / 256; ++blk) {
        const BlockQ2_K* p = reinterpret_cast<const BlockQ2_K*>(src) + blk;
        const double d = f16_to_f32(p->d), dmin = f16_to_f32(p->dmin);
        double* ya = a + blk * 256;
        double* yb = b + blk * 256;
        const uint8_t* q = p->qs;
        int is = 0;
        for (int half = 0; half < 2; ++half, q += 32) {
          for (int shift = 0; shift < 8; shift += 2) {
            for (int part = 0; part < 2; ++part) {
              const uint8_t sc = p->scales[is++];
              for (int l = 0; l < 16; ++l) {
                *ya++ = d * (sc & 0xF) * ((q[l + 16 * part] >> shift) & 3);
                *yb++ = dmin * (sc >> 4);
              }
            }
          }
        }
      }
      break;
    case TensorType::Q3_K:
      for (int64_t blk = 0; blk < n / 256; ++blk) {
        const BlockQ3_K* p = reinterpret_cast<const BlockQ3_K*>(src) + blk;
        const double d = f16_to_f32(p->d);
        int sc[16];
        for (int i = 0; i < 16; ++i) {
          const int lo = i < 8 ? p->scales[i] & 0xF : p->scales[i - 8] >> 4;
          const int hi = (p->scales[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
          sc[i] = (lo | (hi << 4)) - 32;
        }
        double* ya = a + blk * 256;
        const uint8_t* q = p->qs;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < 2; ++half, q += 32) {
          for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
            for (int part = 0; part < 2; ++part) {
              const int s = sc[is++];
              for (int l = 16 * part; l < 16 * part + 16; ++l) {
                *ya++ = d * s * (((q[l] >> shift) & 3) - ((p->hmask[l] & m) ? 0 : 4));
              }
            }
          }
        }
      }
      break;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
      for (int64_t blk = 0; blk < n / 256; ++blk) {
        const bool five = type == TensorType::Q5_K;
        const uint8_t* p = src + blk * gguf::type_info(type).type_size;
        uint16_t dh, mh;
        std::memcpy(&dh, p, 2);
        std::memcpy(&mh, p + 2, 2);
        const uint8_t* scales = p + 4;
        const uint8_t* qh = p + 16;
        const uint8_t* q = p + 16 + (five ? 32 : 0);
        const double d = f16_to_f32(dh), dmin = f16_to_f32(mh);
        double* ya = a + blk * 256;
        double* yb = b + blk * 256;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32, u1 <<= 2, u2 <<= 2) {
          int sc, m;
          scale_min_k4(is, scales, &sc, &m);
          for (int l = 0; l < 32; ++l) {
            *ya++ = d * sc * ((q[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0));
            *yb++ = dmin * m;
          }
          scale_min_k4(is + 1, scales, &sc, &m);
          for (int l = 0; l < 32; ++l) {
            *ya++ = d * sc * ((q[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0));
            *yb++ = dmin * m;
          }
        }
      }
      break;
    case TensorType::Q6_K:
      for (int64_t blk = 0; blk < n / 256; ++blk) {
        const BlockQ6_K* p = reinterpret_cast<const BlockQ6_K*>(src) + blk;
        const double d = f16_to_f32(p->d);
        const uint8_t* ql = p->ql;
        const uint8_t* qh = p->qh;
        const int8_t* sc = p->scales;
        double* y = a + blk * 256;
        for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
          }
        }
      }
      break;
    default: break;
  }
  return out;
}

}  // namespace owl::kernels::test
