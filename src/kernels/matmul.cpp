// matmul: Y[n_rows, n_out] = X[n_rows, n_in] W[n_out, n_in]^T, split over the thread pool by
// blocks of output rows.
//
// Decode (n_rows small) streams W once: each task is a run of output rows, every weight row
// is read from memory once and dotted with all activation rows. Prefill tiles: a task owns
// kTileRows weight rows and walks the activation rows in chunks of kChunkRows (which stay in
// L2), calling the dot on kMaxDotRows activation rows per weight row so that the weight
// blocks decoded in registers serve several rows.
#include <algorithm>

#include "core/result.h"
#include "kernels/kernels.h"

namespace owl::kernels {
namespace {

constexpr int64_t kTileRows = 16;    // weight rows per prefill task
constexpr int64_t kChunkRows = 64;   // activation rows per L2-resident chunk
constexpr int64_t kMinDecodeRows = 8;

QuantizeRowFn quantizer(const Kernels& k, TensorType act) {
  switch (act) {
    case TensorType::Q8_0: return k.quantize_q8_0;
    case TensorType::Q8_1: return k.quantize_q8_1;
    case TensorType::Q8_K: return k.quantize_q8_K;
    default: return nullptr;
  }
}

}  // namespace

bool supports_matmul(const Kernels& k, TensorType w_type) {
  const uint32_t t = static_cast<uint32_t>(w_type);
  return t < kTypeSlots && k.dot[t].dot != nullptr;
}

size_t matmul_scratch_bytes(const Kernels& k, TensorType w_type, int64_t n_in, int64_t n_rows) {
  OWL_CHECK(supports_matmul(k, w_type));
  const TensorType act = k.dot_for(w_type).act_type;
  if (act == TensorType::F32) return 0;
  return static_cast<size_t>(gguf::row_bytes(act, n_in) * n_rows);
}

void matmul(const Kernels& k, core::ThreadPool& pool, const MatmulArgs& a) {
  OWL_CHECK(supports_matmul(k, a.w_type));
  const DotKernel& dk = k.dot_for(a.w_type);
  const int64_t x_stride = a.x_stride ? a.x_stride : a.n_in;
  const int64_t y_stride = a.y_stride ? a.y_stride : a.n_out;
  OWL_CHECK(a.n_in % gguf::type_info(a.w_type).block_size == 0);
  OWL_CHECK(a.n_in % gguf::type_info(dk.act_type).block_size == 0);
  if (a.n_rows <= 0 || a.n_out <= 0) return;

  // Activations in the dot's format: f32 rows are used in place, others quantized once.
  const uint8_t* xq = reinterpret_cast<const uint8_t*>(a.x);
  size_t xq_stride = static_cast<size_t>(x_stride) * sizeof(float);
  if (dk.act_type != TensorType::F32) {
    OWL_CHECK(a.scratch_bytes >= matmul_scratch_bytes(k, a.w_type, a.n_in, a.n_rows));
    const QuantizeRowFn quantize = quantizer(k, dk.act_type);
    xq_stride = static_cast<size_t>(gguf::row_bytes(dk.act_type, a.n_in));
    uint8_t* dst = static_cast<uint8_t*>(a.scratch);
    auto quantize_row = [&](int64_t r, int) { quantize(a.x + r * x_stride, dst + r * xq_stride, a.n_in); };
    pool.parallel_for(a.n_rows, quantize_row);
    xq = dst;
  }

  const size_t w_row_bytes = static_cast<size_t>(gguf::row_bytes(a.w_type, a.n_in));
  const uint8_t* w = static_cast<const uint8_t*>(a.w);
  const int64_t n_threads = pool.n_threads();
  // Decode-sized batches: a few tasks per thread so a slow core does not hold the rest up.
  const int64_t rows_per_task =
      a.n_rows <= kMaxDotRows
          ? std::max(kMinDecodeRows, (a.n_out + 4 * n_threads - 1) / (4 * n_threads))
          : kTileRows;
  const int64_t n_tasks = (a.n_out + rows_per_task - 1) / rows_per_task;
  auto task = [&](int64_t task_index, int) {
    const int64_t o0 = task_index * rows_per_task;
    const int64_t o1 = std::min(a.n_out, o0 + rows_per_task);
    float out[kMaxDotRows];
    for (int64_t c0 = 0; c0 < a.n_rows; c0 += kChunkRows) {
      const int64_t c1 = std::min(a.n_rows, c0 + kChunkRows);
      for (int64_t o = o0; o < o1; ++o) {
        const uint8_t* wr = w + o * w_row_bytes;
        for (int64_t r = c0; r < c1; r += kMaxDotRows) {
          const int nx = static_cast<int>(std::min<int64_t>(kMaxDotRows, c1 - r));
          dk.dot(a.n_in, wr, xq + r * xq_stride, xq_stride, nx, out);
          for (int i = 0; i < nx; ++i) a.y[(r + i) * y_stride + o] = out[i];
        }
      }
    }
  };
  pool.parallel_for(n_tasks, task);
}

}  // namespace owl::kernels
