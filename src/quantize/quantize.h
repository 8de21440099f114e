// owl quantize: a GGUF model in F32/F16/BF16/Q8_0 (or any readable type) -> the same model in a
// preset mix (q4_k_m, q8_0, ...), optionally importance-weighted by an imatrix.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "quantize/imatrix.h"
#include "quantize/quant_mix.h"

namespace owl::quantize {

struct QuantizeProgress {
  int64_t tensors_done = 0;
  int64_t tensors_total = 0;
  uint64_t bytes_in_done = 0;  // input bytes of the tensors finished so far
  uint64_t bytes_in_total = 0;
  std::string tensor;          // the tensor just finished
};

struct QuantizeOptions {
  std::string input;
  std::string output;
  gguf::FileTypeInfo preset;
  std::vector<TensorTypeOverride> overrides;
  const Imatrix* imatrix = nullptr;  // per-column importance of each matrix, by tensor name
  std::string imatrix_path;          // recorded in the output's metadata
  int n_threads = 0;                 // 0: all cores
  bool dry_run = false;              // plan only: nothing is read beyond the header or written
  // Quantize tensors that are quantized already (llama-quantize's --allow-requantize): each
  // round of quantization loses more, so an input with a quantized matrix is an error otherwise.
  bool allow_requantize = false;
  // Called after each tensor, in order, from the one thread that quantizes them (not the caller).
  std::function<void(const QuantizeProgress&)> on_progress;
};

struct QuantizeSummary {
  std::shared_ptr<const gguf::GgufFile> input;  // keeps the plans' tensor pointers valid
  std::vector<TensorPlan> plans;  // one per tensor, in output order
  uint64_t input_bytes = 0;       // tensor data in / out
  uint64_t output_bytes = 0;
  uint64_t output_file_size = 0;  // 0 for a dry run
  int64_t n_fallback = 0;
  int64_t n_imatrix_used = 0;     // tensors quantized with importance weights
  double seconds = 0;
};

// One tensor's rows converted on `pool`: its type -> f32 -> `adjust` -> `target` (importance-
// weighted when `importance` [n_cols] is given). `adjust(row, values)`, when set, may change the
// f32 values of row `row` (0..n_rows-1) before they are written; it is called from the pool's
// threads, each row once. `out` holds row_bytes(target, n_cols) * n_rows bytes.
struct ConvertJob {
  const gguf::TensorInfo& in;
  gguf::TensorType target;
  const float* importance = nullptr;
  std::function<void(int64_t row, float* values)> adjust;
  uint8_t* out = nullptr;
};
void convert_tensor(const ConvertJob& job, core::ThreadPool& pool);

// Writes options.output atomically (temporary name, fsync, rename). The metadata is the
// input's with general.file_type and general.quantization_version set (appended, as
// llama-quantize does) and the tensors in llama.cpp's order, so that where owl's quantizers
// match llama.cpp's the output file is byte-identical to llama-quantize's.
core::Result<QuantizeSummary> quantize_model(const QuantizeOptions& options);

}  // namespace owl::quantize
