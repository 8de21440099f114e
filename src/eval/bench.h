// Throughput measured the way llama-bench measures it: pp = one batch of n_prompt tokens into
// an empty cache; tg = n_gen single-token decodes into an empty cache; each repeated, with one
// untimed warm-up run first.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"
#include "model/adapter.h"
#include "model/forward.h"
#include "model/model.h"

namespace owl::eval {

struct BenchOptions {
  int64_t n_prompt = 512;  // 0: skip pp
  int64_t n_gen = 128;     // 0: skip tg
  int n_threads = 0;       // 0: all cores
  int repetitions = 5;
  int64_t n_batch = 2048;
  // tg: measure the memory read bandwidth before each repetition (kernels::ReadBandwidth), so
  // that generation can be read as a share of it on a machine whose bandwidth varies.
  bool bandwidth = false;
  bool batch_invariant = false;  // model::ContextOptions::batch_invariant
  // Time each kind of matmul and attention in the timed repetitions (model::StepProfile).
  bool profile = false;
  // LoRA adapters applied to every token (loaded for this model); null: the base model.
  const model::AdapterSet* adapters = nullptr;
  // Called on the calling thread before each timed repetition: the test ("pp512") and the
  // repetition (1-based) out of `repetitions`.
  std::function<void(const std::string& test, int rep, int repetitions)> on_progress;
};

// The options a model can run: repetitions >= 1, n_prompt, n_gen and n_batch >= 0, and
// n_prompt and n_gen within the model's training context. Names the option and the value.
core::Status check_bench_options(const model::Model& model, const BenchOptions& options);

struct BenchResult {
  std::string test;        // "pp512" / "tg128"
  int64_t n_prompt = 0;
  int64_t n_gen = 0;
  std::vector<double> samples_ns;  // one per repetition
  double avg_ns = 0, stddev_ns = 0;
  double avg_ts = 0, stddev_ts = 0;  // tokens per second
  // tg with BenchOptions::bandwidth: bytes of weights one token reads, and per repetition the
  // read bandwidth measured just before it (GB/s).
  double weight_bytes_per_token = 0;
  std::vector<double> read_gbs;
  // Per repetition, the share of read_gbs that its tokens' weights took; and their median.
  std::vector<double> bandwidth_shares() const;
  double median_share() const;
  double median_read_gbs() const;  // 0 when the bandwidth was not measured
  // With BenchOptions::profile: every timed repetition's forward passes together.
  model::StepProfile profile;
};

// Bytes of weights one decode step reads: every matrix and vector of the blocks and the output,
// one row of the token embedding, and the A and B of every adapter pair (f32).
double weight_bytes_per_token(const model::Model& model, const model::AdapterSet* adapters = nullptr);

core::Result<std::vector<BenchResult>> run_bench(const model::Model& model, const BenchOptions& options);

}  // namespace owl::eval
