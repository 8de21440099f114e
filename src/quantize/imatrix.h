// Importance matrices: the mean of the squared activation of every input column of every
// weight matrix over a calibration text, stored in llama.cpp's GGUF imatrix format
// (tools/imatrix: general.type = "imatrix"; per matrix `<name>.in_sum2` [n_in][n_mat] F32 sums
// of x^2 and `<name>.counts` [1][n_mat] F32 row counts; imatrix.datasets,
// imatrix.chunk_count, imatrix.chunk_size).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.h"
#include "model/forward.h"

namespace owl::quantize {

struct ImatrixEntry {
  std::vector<double> sum_sq;  // [n_in] sum over rows of x^2
  int64_t count = 0;           // rows accumulated
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight tensor name ("blk.0.attn_q.weight")
  std::vector<std::string> datasets;
  int64_t chunk_count = 0;
  int64_t chunk_size = 0;

  // The importance of each column (mean x^2), or nullptr-equivalent empty when absent.
  std::vector<float> importance(const std::string& tensor, int64_t n_in) const;
};

core::Status save_imatrix(const Imatrix& imatrix, const std::string& path);
core::Result<Imatrix> load_imatrix(const std::string& path);

// Collects an imatrix over forward() passes: install it as Context::observer. Names come from
// the model's weight table, so that each matmul's input is filed under its tensor.
struct ImatrixOptions {
  std::string model;
  std::string text;         // calibration text
  std::string dataset_name;
  int64_t n_ctx = 512;      // tokens per chunk; each chunk starts a fresh sequence
  int64_t max_chunks = 0;   // 0: all
  int n_threads = 0;
  std::function<void(int64_t done, int64_t total)> on_progress;
};

struct ImatrixResult {
  Imatrix imatrix;
  int64_t n_tokens = 0;
  double perplexity = 0;  // over the second half of every chunk, as llama-imatrix reports
};

core::Result<ImatrixResult> compute_imatrix(const ImatrixOptions& options);

}  // namespace owl::quantize
