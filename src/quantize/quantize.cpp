// quantize_model: converts each tensor row by row (input type -> f32 -> target type) on a
// thread pool, keeping llama-quantize's metadata and tensor order.
#include "quantize/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/thread_pool.h"
#include "gguf/keys.h"
#include "kernels/kernels.h"
#include "quant/quant.h"
#include "quant/weighted.h"

namespace owl::quantize {

namespace keys = gguf::keys;

using core::make_error;
using gguf::TensorType;

namespace {

// Metadata that llama-quantize drops or sets itself.
bool replaced_key(std::string_view key) {
  return key == keys::kGeneralQuantizationVersion || key == keys::kGeneralFileType || key == keys::kSplitNo ||
         key == keys::kSplitCount || key == keys::kSplitTensorsCount;
}

void copy_metadata(const gguf::GgufFile& in, const QuantizeOptions& o, int64_t n_imatrix, gguf::GgufWriter& out) {
  for (const gguf::MetadataEntry& e : in.metadata()) {
    if (!replaced_key(e.key)) out.set(e.key, e.value);
  }
  out.set(keys::kGeneralQuantizationVersion, gguf::Value::u32(2));
  out.set(keys::kGeneralFileType, gguf::Value::u32(static_cast<uint32_t>(o.preset.file_type)));
  if (o.imatrix) {
    out.set(keys::kQuantizeImatrixFile, gguf::Value::string(o.imatrix_path));
    out.set(keys::kQuantizeImatrixEntriesCount, gguf::Value::i32(static_cast<int32_t>(n_imatrix)));
    out.set(keys::kQuantizeImatrixChunksCount, gguf::Value::i32(static_cast<int32_t>(o.imatrix->chunk_count)));
    if (!o.imatrix->datasets.empty()) {
      out.set(keys::kQuantizeImatrixDataset, gguf::Value::string(o.imatrix->datasets.front()));
    }
  }
}

core::Status check_imatrix(const QuantizeOptions& o, const std::vector<TensorPlan>& plans) {
  if (!o.imatrix) return {};
  for (const TensorPlan& p : plans) {
    auto it = o.imatrix->entries.find(p.tensor->name);
    if (it != o.imatrix->entries.end() && static_cast<int64_t>(it->second.sum_sq.size()) != p.tensor->ne[0]) {
      return make_error("quantize: imatrix {}: entry {} has {} columns, the model's tensor has {}", o.imatrix_path,
                        p.tensor->name, it->second.sum_sq.size(), p.tensor->ne[0]);
    }
  }
  return {};
}

}  // namespace

// Rows in chunks, so that every thread has work and the f32 copy of a chunk stays in cache.
void convert_tensor(const ConvertJob& job, core::ThreadPool& pool) {
  const int64_t n_cols = job.in.ne[0];
  const int64_t n_rows = job.in.n_rows();
  const int64_t in_row = gguf::row_bytes(job.in.type, n_cols);
  const int64_t out_row = gguf::row_bytes(job.target, n_cols);
  const int64_t rows_per_task = std::max<int64_t>(1, (int64_t{1} << 16) / n_cols);
  const int64_t n_tasks = (n_rows + rows_per_task - 1) / rows_per_task;
  // F16 / BF16 widening and the weight quantizers in SIMD where the CPU has them (same bytes).
  static const kernels::Kernels simd = kernels::make_kernels();
  // One f32 row per thread.
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.n_threads()), std::vector<float>(n_cols));
  pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
    std::vector<float>& row = scratch[static_cast<size_t>(thread)];
    const int64_t end = std::min(n_rows, (task + 1) * rows_per_task);
    for (int64_t r = task * rows_per_task; r < end; ++r) {
      const uint8_t* src = job.in.data + r * in_row;
      if (job.in.type == TensorType::F32) {
        std::copy_n(reinterpret_cast<const float*>(src), n_cols, row.data());
      } else if (job.in.type == TensorType::F16) {
        simd.widen_f16(src, row.data(), n_cols);
      } else if (job.in.type == TensorType::BF16) {
        simd.widen_bf16(src, row.data(), n_cols);
      } else {
        quant::dequantize_row(job.in.type, src, row.data(), n_cols);
      }
      if (job.adjust) job.adjust(r, row.data());
      uint8_t* dst = job.out + r * out_row;
      if (!job.importance || !quant::quantize_row_weighted(job.target, row.data(), dst, n_cols, job.importance)) {
        kernels::quantize_weight_row(simd, job.target, row.data(), dst, n_cols);
      }
    }
  });
}

core::Result<QuantizeSummary> quantize_model(const QuantizeOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  auto opened = gguf::GgufFile::open(o.input);
  if (!opened) return opened.error();
  QuantizeSummary summary;
  summary.input = std::make_shared<const gguf::GgufFile>(std::move(*opened));
  const gguf::GgufFile& file = *summary.input;
  MixOptions mix{o.preset, o.overrides, o.imatrix != nullptr};
  auto plans = plan_quantization(file, mix);
  if (!plans) return plans.error();
  OWL_TRY(check_imatrix(o, *plans));
  for (const TensorPlan& p : *plans) {
    if (!o.allow_requantize && gguf::type_info(p.tensor->type).quantized && p.target != p.tensor->type) {
      return core::make_error("quantize: {}: {} is {} already; requantizing loses quality (allow it with --allow-requantize)",
                              o.input, p.tensor->name, gguf::type_info(p.tensor->type).name);
    }
  }
  summary.plans = *plans;
  for (const TensorPlan& p : summary.plans) {
    summary.input_bytes += p.tensor->n_bytes;
    summary.output_bytes += static_cast<uint64_t>(gguf::row_bytes(p.target, p.tensor->ne[0]) * p.tensor->n_rows());
    summary.n_fallback += p.fallback ? 1 : 0;
  }
  if (o.dry_run) return summary;

  core::ThreadPool pool(o.n_threads);

  // Tensors copied unchanged borrow the map; quantized ones are produced on a thread of their
  // own while the writer writes the one before (the copy into the page cache is as long as the
  // quantization of the fast types), each buffer freed once it is written.
  gguf::GgufWriter writer;
  std::vector<std::vector<float>> importances(summary.plans.size());
  int64_t n_imatrix = 0;
  for (size_t i = 0; i < summary.plans.size(); ++i) {
    const TensorPlan& p = summary.plans[i];
    const gguf::TensorInfo& t = *p.tensor;
    const std::span<const int64_t> shape(t.ne, static_cast<size_t>(t.n_dims));
    if (p.quantize) {
      if (o.imatrix && gguf::type_info(p.target).quantized) importances[i] = o.imatrix->importance(t.name, t.ne[0]);
      n_imatrix += importances[i].empty() ? 0 : 1;
      OWL_TRY(writer.add_tensor_later(t.name, p.target, shape));
    } else {
      OWL_TRY(writer.add_tensor(t.name, p.target, shape, std::span<const uint8_t>(t.data, t.n_bytes)));
    }
  }
  summary.n_imatrix_used = n_imatrix;
  copy_metadata(file, o, n_imatrix, writer);

  std::vector<std::vector<uint8_t>> buffers(summary.plans.size());
  std::mutex mutex;
  std::condition_variable changed;
  size_t produced = 0;   // tensors [0, produced) are ready
  size_t writing = 0;    // the tensor the writer waits for or writes
  bool abandoned = false;
  std::thread producer([&] {
    QuantizeProgress progress{0, static_cast<int64_t>(summary.plans.size()), 0, summary.input_bytes, {}};
    for (size_t i = 0; i < summary.plans.size(); ++i) {
      const TensorPlan& p = summary.plans[i];
      const gguf::TensorInfo& t = *p.tensor;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return abandoned || i <= writing + 1; });  // at most one ahead
        if (abandoned) return;
      }
      if (p.quantize) {
        std::vector<uint8_t> out(static_cast<size_t>(gguf::row_bytes(p.target, t.ne[0]) * t.n_rows()));
        convert_tensor({.in = t, .target = p.target, .importance = importances[i].empty() ? nullptr : importances[i].data(),
                        .out = out.data()},
                       pool);
        std::lock_guard lock(mutex);
        buffers[i] = std::move(out);
      }
      {
        std::lock_guard lock(mutex);
        produced = i + 1;
      }
      changed.notify_all();
      progress.tensors_done = static_cast<int64_t>(i) + 1;
      progress.bytes_in_done += t.n_bytes;
      progress.tensor = t.name;
      if (o.on_progress) o.on_progress(progress);
    }
  });
  auto later = [&](size_t i) -> core::Result<std::span<const uint8_t>> {
    std::unique_lock lock(mutex);
    for (size_t j = writing; j < i; ++j) std::vector<uint8_t>().swap(buffers[j]);  // written
    writing = i;
    changed.notify_all();
    changed.wait(lock, [&] { return produced > i; });
    return std::span<const uint8_t>(buffers[i]);
  };
  const core::Status status = writer.write(o.output, later);
  {
    std::lock_guard lock(mutex);
    abandoned = true;
  }
  changed.notify_all();
  producer.join();
  OWL_TRY(status);
  auto written = gguf::GgufFile::open(o.output);
  if (!written) return make_error("quantize: re-reading {}: {}", o.output, written.message());
  summary.output_file_size = written->file_size();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace owl::quantize
