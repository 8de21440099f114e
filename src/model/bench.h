// Throughput measured the way llama-bench measures it: pp = one batch of n_prompt tokens into
// an empty cache; tg = n_gen single-token decodes into an empty cache; each repeated, with one
// untimed warm-up run first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "model/model.h"

namespace owl::model {

struct BenchOptions {
  int64_t n_prompt = 512;  // 0: skip pp
  int64_t n_gen = 128;     // 0: skip tg
  int n_threads = 2;
  int repetitions = 5;
  int64_t n_batch = 2048;
};

struct BenchResult {
  std::string test;        // "pp512" / "tg128"
  int64_t n_prompt = 0;
  int64_t n_gen = 0;
  std::vector<double> samples_ns;  // one per repetition
  double avg_ns = 0, stddev_ns = 0;
  double avg_ts = 0, stddev_ts = 0;  // tokens per second
};

core::Result<std::vector<BenchResult>> run_bench(const Model& model, const BenchOptions& options);

}  // namespace owl::model
