// Batch invariance of matmul: an activation row's outputs are the same bits whatever else is in
// the matmul (how many rows, where this row sits among them) and however many threads split it.
// This is what lets a seeded request give the same text alone and in a server's batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernel_test_util.h"

namespace owl::kernels {
namespace {

const TensorType kTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,
                             TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                             TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                             TensorType::Q6_K, TensorType::Q8_K};

// Row counts on both sides of every kernel switch: one row, a decode register tile (kTileX), the
// panels (from 5 rows; F16 from 17), several panel passes and more than one panel row block.
const int64_t kRowCounts[] = {1, 2, 3, 4, 5, 8, 13, 17, 40, 300};

struct Weights {
  TensorType type;
  int64_t n_in, n_out;
  std::vector<uint8_t> w;
};

// n_out = 72: a full 64-row prefill block (two 32-row panel groups) and a partial one (8 rows).
// n_in: several of the panels' chunks of blocks (16 or 32 blocks of 32; 4 of 256; 128 f16
// elements) and a part of one, with an odd tail for plain types.
Weights make_weights(TensorType type, uint32_t seed) {
  const int64_t bs = gguf::type_info(type).block_size;
  Weights m{.type = type, .n_in = bs == 1 ? 1031 : bs == 32 ? 32 * 75 : 256 * 9, .n_out = 72, .w = {}};
  std::mt19937 rng(seed);
  for (int64_t o = 0; o < m.n_out; ++o) {
    const std::vector<uint8_t> row = test::make_weight_row(type, m.n_in, test::Fill::kRandom, rng);
    m.w.insert(m.w.end(), row.begin(), row.end());
  }
  return m;
}

// Y for rows [r0, r0 + n_rows) of x.
std::vector<float> run(const Kernels& k, core::ThreadPool& pool, const Weights& m, const std::vector<float>& x,
                       int64_t r0, int64_t n_rows) {
  std::vector<float> y(static_cast<size_t>(n_rows * m.n_out), NAN);
  std::vector<uint8_t> scratch(matmul_scratch_bytes(k, m.type, m.n_in, n_rows));
  matmul(k, pool,
         MatmulArgs{.w_type = m.type, .w = m.w.data(), .x = x.data() + r0 * m.n_in, .y = y.data(), .n_in = m.n_in,
                    .n_out = m.n_out, .n_rows = n_rows, .scratch = scratch.data(), .scratch_bytes = scratch.size(),
                    .batch_invariant = true});
  return y;
}

// Every row of every batch size, on 1 and 3 threads, equals that row computed alone on one
// thread, bit for bit (EXPECT_EQ on floats: no tolerance).
TEST(MatmulInvariance, RowsEqualTheRowAloneWhateverTheBatchAndThreads) {
  core::ThreadPool one(1), three(3);
  const int64_t max_rows = *std::max_element(std::begin(kRowCounts), std::end(kRowCounts));
  for (Isa isa : test::available_isas()) {
    const Kernels k = make_kernels(isa);
    for (TensorType type : kTypes) {
      if (!supports_matmul(k, type)) continue;
      const Weights m = make_weights(type, 7 + static_cast<uint32_t>(type));
      std::mt19937 rng(11);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::vector<float> x(static_cast<size_t>(max_rows * m.n_in));
      for (float& v : x) v = normal(rng);
      std::vector<std::vector<float>> alone;
      for (int64_t r = 0; r < max_rows; ++r) alone.push_back(run(k, one, m, x, r, 1));
      for (int64_t n_rows : kRowCounts) {
        for (core::ThreadPool* pool : {&one, &three}) {
          // The batch starts at a row that varies with its size, so each row sits at other positions.
          const int64_t r0 = (max_rows - n_rows) * 3 / 7;
          const std::vector<float> y = run(k, *pool, m, x, r0, n_rows);
          int mismatches = 0;
          for (int64_t r = 0; r < n_rows; ++r) {
            for (int64_t o = 0; o < m.n_out; ++o) {
              mismatches += std::memcmp(&y[r * m.n_out + o], &alone[r0 + r][o], sizeof(float)) != 0;
            }
          }
          EXPECT_EQ(mismatches, 0) << gguf::type_info(type).name << " isa=" << isa_name(isa) << " rows=" << n_rows
                                   << " threads=" << pool->n_threads();
        }
      }
    }
  }
}

}  // namespace
}  // namespace owl::kernels
