// matmul: Y[n_rows, n_out] = X[n_rows, n_in] W[n_out, n_in]^T, split over the thread pool.
//
// Decode (n_rows <= kTileX) streams W once: each task is a contiguous run of output rows, read
// from memory once, kTileW rows per kernel call (or one, see tile_avx512.cpp) so the
// activation loads and the horizontal reductions are shared. Prefill is compute-bound: a task
// owns a block of kBlockW weight rows x kBlockX activation rows (both L2-resident) and walks it
// in kTileW x kTileX register tiles (the table's tile kernel; dot per weight row where a type
// has none), or, where the type has a panel kernel and more than its panel_above rows, owns
// kBlockW weight rows x kPanelBlockX activation rows in weight panels of its panel_w rows. A
// group of matmuls over the same X converts it once and, in prefill, runs all their tasks as
// one job.
#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "core/result.h"
#include "kernels/kernels.h"
#include "quant/blocks.h"

namespace owl::kernels {
namespace {

constexpr int64_t kBlockW = 64;  // weight rows per prefill task (multiple of kTileW and 2 kPanelW)
static_assert(kBlockW % kTileW == 0 && kBlockW % (2 * kPanelW) == 0);
constexpr int64_t kBlockX = 64;  // activation rows per prefill task (multiple of kTileX)
// Activation rows per panel task: a serving step packs each weight panel once (their panel
// rows, 256 x 1.1 KiB per chunk, stay in L2); 64 measured 4-8% slower on 160 rows, 512 slower.
constexpr int64_t kPanelBlockX = 256;
constexpr int64_t kTasksPerThread = 4;  // decode: a slow core does not hold the rest up

struct Operands {
  const DotKernel& dk;
  int64_t n_in;
  const uint8_t* w;
  size_t w_row_bytes;
  const uint8_t* x;
  size_t x_row_bytes;
  float* y;
  int64_t y_stride;
};

// Output rows [o0, o0 + n_w) x activation rows [r0, r0 + n_x), n_x <= kTileX.
void compute_tile(const Operands& op, int64_t o0, int n_w, int64_t r0, int n_x) {
  if (op.dk.tile != nullptr) {
    op.dk.tile(TileArgs{.n = op.n_in, .w = op.w + o0 * op.w_row_bytes, .w_stride = op.w_row_bytes, .n_w = n_w,
                        .x = op.x + r0 * op.x_row_bytes, .x_stride = op.x_row_bytes, .n_x = n_x,
                        .y = op.y + r0 * op.y_stride + o0, .y_stride = op.y_stride});
    return;
  }
  static_assert(kTileX <= kMaxDotRows);
  float out[kMaxDotRows];
  // n_w may exceed kTileW here: dot has no register tile.
  for (int o = 0; o < n_w; ++o) {
    op.dk.dot(op.n_in, op.w + (o0 + o) * op.w_row_bytes, op.x + r0 * op.x_row_bytes, op.x_row_bytes, n_x, out);
    for (int r = 0; r < n_x; ++r) op.y[(r0 + r) * op.y_stride + o0 + o] = out[r];
  }
}

// Rows [o0, o1) x [r0, r1), kTileX activation rows at a time (they stay in L1 across the
// weight rows), in runs of at most kBlockW weight rows.
void compute_block(const Operands& op, int64_t o0, int64_t o1, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r += kTileX) {
    const int n_x = static_cast<int>(std::min<int64_t>(kTileX, r1 - r));
    for (int64_t o = o0; o < o1; o += kBlockW) {
      compute_tile(op, o, static_cast<int>(std::min<int64_t>(kBlockW, o1 - o)), r, n_x);
    }
  }
}

// Q8_0 activations of a panel matmul take panel rows.
bool panel_q8_0(const DotKernel& dk) { return dk.panel != nullptr && dk.act_type == TensorType::Q8_0; }

// The activation format a matmul converts X to: the dot's act_type, as panel rows or not.
struct ActFormat {
  TensorType type;
  bool panel_rows;
  bool operator==(const ActFormat&) const = default;
};

// Bytes of one converted activation row (F32: none, X is used in place).
size_t act_row_bytes(ActFormat f, int64_t n) {
  if (f.type == TensorType::F32) return 0;
  return f.panel_rows ? panel_q8_0_row_bytes(n) : static_cast<size_t>(gguf::row_bytes(f.type, n));
}

}  // namespace

bool supports_matmul(const Kernels& k, TensorType w_type) {
  const uint32_t t = static_cast<uint32_t>(w_type);
  return t < gguf::kTensorTypeSlots && k.dot[t].dot != nullptr;
}

QuantizeRowFn activation_quantizer(const Kernels& k, TensorType act) {
  switch (act) {
    case TensorType::F16: return k.quantize_f16;
    case TensorType::BF16: return k.quantize_bf16;
    case TensorType::Q8_0: return k.quantize_q8_0;
    case TensorType::Q8_1: return k.quantize_q8_1;
    case TensorType::Q8_K: return k.quantize_q8_K;
    default: return nullptr;
  }
}

size_t matmul_scratch_bytes(const Kernels& k, TensorType w_type, int64_t n_in, int64_t n_rows) {
  OWL_CHECK(supports_matmul(k, w_type));
  const DotKernel& dk = k.dot_for(w_type);
  // Whichever format the row count picks (panel rows from panel_above rows on).
  const size_t row =
      std::max(act_row_bytes({dk.act_type, false}, n_in), act_row_bytes({dk.act_type, panel_q8_0(dk)}, n_in));
  return row * static_cast<size_t>(n_rows);
}

namespace {

// One matmul of a job: its operands and how its output splits into tasks.
struct Part {
  const MatmulArgs* a;
  const DotKernel* dk;
  bool use_panel;
  ActFormat format;
  bool decode;  // few activation rows: W streams once, in contiguous runs
  size_t w_row_bytes;
  int64_t y_stride;
  int64_t n_tasks = 0;
  int64_t run = 0;        // decode: weight rows per task
  int64_t block_x = 0;    // prefill: activation rows per task
  int64_t n_xblocks = 0;
  const uint8_t* xq = nullptr;  // X in `format`
  size_t xq_stride = 0;

  Part(const Kernels& k, const MatmulArgs& args, int n_threads) : a(&args), dk(&k.dot_for(args.w_type)) {
    OWL_CHECK(supports_matmul(k, args.w_type));
    OWL_CHECK(args.n_in % gguf::type_info(args.w_type).block_size == 0);
    OWL_CHECK(args.n_in % gguf::type_info(dk->act_type).block_size == 0);
    // Many activation rows: weight panels where the type has them (kernels.h, kPanelW); every
    // row count when batch invariant, as the panel sums in another order than the tile.
    // Packed weights: their row kernel up to kPackedRowsMax rows (it reads each group from memory
    // once and from L1 for every 4 rows, where the panel repacks), the panel above.
    use_panel = args.w_packed ? args.n_rows > kPackedRowsMax
                              : dk->panel != nullptr && (args.n_rows > dk->panel_above || args.batch_invariant);
    OWL_CHECK(!use_panel || dk->act_type == TensorType::Q8_0 || dk->act_type == TensorType::Q8_K ||
              dk->act_type == TensorType::F16 || dk->act_type == TensorType::BF16);
    OWL_CHECK(!use_panel || dk->panel_w == kPanelW || dk->panel_w == 2 * kPanelW);
    format = {dk->act_type, use_panel && panel_q8_0(*dk)};
    // Panels go by aligned blocks of kBlockW weight rows (whose panel_w groups set a panel's
    // chunk length), never by runs that depend on the thread count.
    decode = (args.n_rows <= kTileX || args.w_packed) && !use_panel;
    w_row_bytes = static_cast<size_t>(gguf::row_bytes(args.w_type, args.n_in));
    y_stride = args.y_stride ? args.y_stride : args.n_out;
    OWL_CHECK(!args.w_packed ||
              (reads_packed(k, args.w_type) && packable(args.w_type, args.n_out, args.n_in) && !args.batch_invariant));
    if (decode) {
      // Contiguous runs of whole tiles (packed: whole groups), a few per thread.
      const int64_t unit = args.w_packed ? kPanelW : kTileW;
      const int64_t n_split = kTasksPerThread * n_threads;
      run = std::max<int64_t>(unit, (a->n_out + n_split - 1) / n_split / unit * unit);
      n_tasks = (a->n_out + run - 1) / run;
      return;
    }
    block_x = use_panel ? kPanelBlockX : kBlockX;
    n_xblocks = (a->n_rows + block_x - 1) / block_x;
    n_tasks = (a->n_out + kBlockW - 1) / kBlockW * n_xblocks;
  }

  void task(int64_t t) const {
    const Operands op{.dk = *dk, .n_in = a->n_in, .w = static_cast<const uint8_t*>(a->w), .w_row_bytes = w_row_bytes,
                      .x = xq, .x_row_bytes = xq_stride, .y = a->y, .y_stride = y_stride};
    if (decode && a->w_packed) {
      const int64_t o0 = t * run, o1 = std::min(a->n_out, (t + 1) * run);
      dk->packed_rows(TileArgs{.n = a->n_in, .w = op.w + o0 * op.w_row_bytes, .w_stride = op.w_row_bytes,
                               .n_w = static_cast<int>(o1 - o0), .x = op.x, .x_stride = op.x_row_bytes,
                               .n_x = static_cast<int>(a->n_rows), .y = a->y + o0, .y_stride = y_stride});
      return;
    }
    if (decode) {
      compute_block(op, t * run, std::min(a->n_out, (t + 1) * run), 0, a->n_rows);
      return;
    }
    // Consecutive tasks share the weight block, so a thread's next task finds it in its L2.
    const int64_t wb = t / n_xblocks, xb = t % n_xblocks;
    const int64_t o0 = wb * kBlockW, o1 = std::min(a->n_out, (wb + 1) * kBlockW);
    const int64_t r0 = xb * block_x, r1 = std::min(a->n_rows, (xb + 1) * block_x);
    if (!use_panel) {
      compute_block(op, o0, o1, r0, r1);
      return;
    }
    const TileFn panel = a->w_packed ? dk->packed_panel : dk->panel;
    for (int64_t o = o0; o < o1; o += dk->panel_w) {
      panel(TileArgs{.n = a->n_in, .w = op.w + o * op.w_row_bytes, .w_stride = op.w_row_bytes,
                         .n_w = static_cast<int>(std::min<int64_t>(dk->panel_w, o1 - o)), .x = op.x + r0 * op.x_row_bytes,
                         .x_stride = op.x_row_bytes, .n_x = static_cast<int>(r1 - r0), .y = a->y + r0 * y_stride + o,
                         .y_stride = y_stride});
    }
  }
};

// X converted once to `format` (f32 rows are used in place); returns the rows and their stride.
std::pair<const uint8_t*, size_t> convert(const Kernels& k, core::ThreadPool& pool, const MatmulArgs& a, ActFormat format) {
  const int64_t x_stride = a.x_stride ? a.x_stride : a.n_in;
  if (format.type == TensorType::F32) {
    return {reinterpret_cast<const uint8_t*>(a.x), static_cast<size_t>(x_stride) * sizeof(float)};
  }
  const QuantizeRowFn quantize = format.panel_rows ? k.quantize_panel_q8_0 : activation_quantizer(k, format.type);
  OWL_CHECK(quantize != nullptr);
  const size_t stride = act_row_bytes(format, a.n_in);
  OWL_CHECK(a.scratch_bytes >= stride * static_cast<size_t>(a.n_rows));
  uint8_t* dst = static_cast<uint8_t*>(a.scratch);
  pool.parallel_for(a.n_rows, [&](int64_t r, int) { quantize(a.x + r * x_stride, dst + r * stride, a.n_in); });
  return {dst, stride};
}

}  // namespace

void matmul(const Kernels& k, core::ThreadPool& pool, const MatmulArgs& a) { matmul(k, pool, std::span(&a, 1)); }

void matmul(const Kernels& k, core::ThreadPool& pool, std::span<const MatmulArgs> group) {
  OWL_CHECK(group.size() <= kMaxMatmulGroup);
  if (group.empty()) return;
  const MatmulArgs& first = group[0];
  if (first.n_rows <= 0) return;
  std::array<std::optional<Part>, kMaxMatmulGroup> parts;
  for (size_t i = 0; i < group.size(); ++i) {
    const MatmulArgs& m = group[i];
    OWL_CHECK(m.x == first.x && m.n_in == first.n_in && m.n_rows == first.n_rows && m.x_stride == first.x_stride &&
              m.batch_invariant == first.batch_invariant);
    parts[i].emplace(k, m, pool.n_threads());
  }
  // Matmuls whose activation formats differ run one after another (each converts X itself).
  for (size_t i = 1; i < group.size(); ++i) {
    if (parts[i]->format == parts[0]->format) continue;
    for (const MatmulArgs& m : group) matmul(k, pool, m);
    return;
  }
  std::array<int64_t, kMaxMatmulGroup + 1> first_task{};
  for (size_t i = 0; i < group.size(); ++i) first_task[i + 1] = first_task[i] + parts[i]->n_tasks;
  if (first_task[group.size()] == 0) return;  // no outputs
  const auto [xq, xq_stride] = convert(k, pool, first, parts[0]->format);
  for (size_t i = 0; i < group.size(); ++i) {
    parts[i]->xq = xq;
    parts[i]->xq_stride = xq_stride;
  }
  if (parts[0]->decode) {
    // Decode: a job per part (one job over all measured 1-3% slower for Q4_0 generation).
    for (size_t i = 0; i < group.size(); ++i) pool.parallel_for(parts[i]->n_tasks, [&](int64_t t, int) { parts[i]->task(t); });
    return;
  }
  // Prefill: one job over every part's tasks.
  pool.parallel_for(first_task[group.size()], [&](int64_t t, int) {
    size_t i = 0;
    while (t >= first_task[i + 1]) ++i;
    parts[i]->task(t - first_task[i]);
  });
}

}  // namespace owl::kernels
