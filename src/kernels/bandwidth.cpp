// The machine's memory read bandwidth, measured the way a decode step reads weights: every
// thread of the pool streams its share of a buffer far larger than the caches, mapped in 2 MiB
// pages where the kernel gives them, as the weights are (core::HugePageBuffer).
#include <immintrin.h>

#include <algorithm>
#include <chrono>

#include "kernels/kernels.h"

namespace owl::kernels {
namespace {

// Sum of 64-bit words: the loads are the work, the adds keep them alive. 256-bit loads where
// the CPU has AVX2, so the figure is the memory's and not the core's.
__attribute__((target("avx2"))) uint64_t stream_sum_avx2(const uint64_t* p, size_t n) {
  __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 4; ++k) {
      s[k] = _mm256_add_epi64(s[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4 * k)));
    }
  }
  alignas(32) uint64_t w[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w),
                     _mm256_add_epi64(_mm256_add_epi64(s[0], s[1]), _mm256_add_epi64(s[2], s[3])));
  uint64_t total = w[0] + w[1] + w[2] + w[3];
  for (; i < n; ++i) total += p[i];
  return total;
}

uint64_t stream_sum(const uint64_t* p, size_t n) {
  static const bool avx2 = detect_cpu_features().avx2;
  if (avx2) return stream_sum_avx2(p, n);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

}  // namespace

ReadBandwidth::ReadBandwidth(size_t bytes) : buffer_(std::max<size_t>(bytes / sizeof(uint64_t), 1) * sizeof(uint64_t)) {
  auto* words = reinterpret_cast<uint64_t*>(buffer_.data());
  for (size_t i = 0; i < n_words(); ++i) words[i] = i;
}

double ReadBandwidth::measure(core::ThreadPool& pool, int passes) {
  double best = 0.0;
  const int64_t n_tasks = pool.n_threads();
  const size_t chunk = n_words() / static_cast<size_t>(n_tasks);
  const auto* words = reinterpret_cast<const uint64_t*>(buffer_.data());
  for (int pass = 0; pass < passes; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(n_tasks, [&](int64_t t, int) { sink_ += stream_sum(words + t * chunk, chunk); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(chunk * n_tasks * sizeof(uint64_t)) / s / 1e9);
  }
  return best;
}

}  // namespace owl::kernels
