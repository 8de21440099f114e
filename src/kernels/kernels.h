// The CPU kernels the inference engine calls, and the dispatch table that picks one variant
// (scalar reference, AVX2, AVX-512) per op once at start-up.
//
// Every table entry has a scalar reference in kernels/ref/ that defines what it computes; the
// SIMD variants differ from it only in float summation order (tests/kernels check this).
// Nothing here allocates or throws; shapes are checked with OWL_CHECK (invariants, not input).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/huge_buffer.h"
#include "core/thread_pool.h"
#include "gguf/tensor_type.h"
#include "kernels/cpu_features.h"

namespace owl::kernels {

using gguf::TensorType;

// y[r] = sum_i w[i] * x_r[i] for r in [0, n_x): one weight row against n_x <= kMaxDotRows
// activation rows, x_r = x + r * x_stride bytes. n (elements) is a multiple of the weight's
// block size; w is in the weight format, x in the matching activation format (DotKernel).
using DotFn = void (*)(int64_t n, const void* w, const void* x, size_t x_stride, int n_x,
                       float* y);
inline constexpr int kMaxDotRows = 4;

// Converts one f32 row of n elements to an activation format (F16, BF16, Q8_0, Q8_1, Q8_K).
using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n);
// y[i] = x[i] widened to f32, exactly (F16 or BF16 rows).
using WidenRowFn = void (*)(const void* x, float* y, int64_t n);

// A block of the matmul: y[r * y_stride + o] = dot(w_o, x_r) for o < n_w and r < n_x <= kTileX,
// with w_o = w + o * w_stride and x_r = x + r * x_stride (bytes); kernels walk the weight rows
// in register tiles of kTileW. The values are those of DotFn on each pair (same math; only f32
// summation order differs).
struct TileArgs {
  int64_t n = 0;  // elements per row, a multiple of the weight's block size
  const void* w = nullptr;
  size_t w_stride = 0;
  int n_w = 0;
  const void* x = nullptr;
  size_t x_stride = 0;
  int n_x = 0;
  float* y = nullptr;
  int64_t y_stride = 0;  // floats between activation rows of y
};
using TileFn = void (*)(const TileArgs& t);
inline constexpr int kTileW = 4;
inline constexpr int kTileX = 4;

// A panel: TileArgs with n_w <= DotKernel::panel_w (kPanelW, or twice that) weight rows and any
// number of activation rows, for matmuls with many activation rows. A panel kernel takes Q8_K
// and F16 activations as they are, and Q8_0 ones as panel rows (matmul prepares them with
// Kernels::quantize_panel_q8_0): the n values biased to unsigned bytes x + 128, then the n / 32
// block scales as f32 (panel_q8_0_row_bytes).
inline constexpr int kPanelW = 16;
inline constexpr int kPackedRowsMax = 16;  // activation rows of DotKernel::packed_rows
inline constexpr size_t panel_q8_0_row_bytes(int64_t n) { return static_cast<size_t>(n + n / 32 * 4); }

struct DotKernel {
  DotFn dot = nullptr;                  // nullptr: weight type not supported by matmul
  TileFn tile = nullptr;                // optional; matmul uses it for whole tiles when set
  TileFn panel = nullptr;               // optional; act_type Q8_0 (panel rows), Q8_K or F16, see kPanelW
  int panel_above = kTileX;             // matmuls with more activation rows than this use the panel
  int panel_w = kPanelW;                // weight rows per panel call: kPanelW or 2 kPanelW
  TensorType act_type = TensorType::F32;  // F32, F16, BF16, Q8_0, Q8_1 or Q8_K
  // Weights in the packed layout (pack_weights, below): TileArgs.w at the first row of a group,
  // n_w a multiple of kPanelW, w_stride the GGUF row bytes. packed_rows takes up to
  // kPackedRowsMax activation rows in act_type; packed_panel is `panel` on the packed layout
  // (panel_w rows), for more.
  TileFn packed_rows = nullptr;
  TileFn packed_panel = nullptr;
  // Writes pack_weights' bytes (its fast variant).
  void (*pack)(const void* w, int64_t n_out, int64_t n_in, void* out) = nullptr;
};

// One query block against a KV cache; see attention() below.
struct AttentionArgs {
  const float* q = nullptr;     // [n_tokens][q_stride], head h at q + h * head_dim
  const uint16_t* k = nullptr;  // f16 [n_kv][kv_stride], KV head g at k + g * head_dim
  const uint16_t* v = nullptr;  // f16 [n_kv][kv_stride], as k
  float* out = nullptr;         // [n_tokens][out_stride], head h at out + h * head_dim
  int64_t n_tokens = 0;
  int64_t n_kv = 0;
  int n_head = 0;
  int n_head_kv = 0;            // query head h uses KV head h / (n_head / n_head_kv)
  int head_dim = 0;
  int64_t q_stride = 0;         // floats between tokens; 0: n_head * head_dim
  int64_t kv_stride = 0;        // elements between KV entries; 0: n_head_kv * head_dim
  int64_t out_stride = 0;       // floats between tokens; 0: n_head * head_dim
  // Key j is visible to query t when kv_pos[j] <= q_pos[t] (causal) and, if window > 0,
  // q_pos[t] - kv_pos[j] < window. q_pos == nullptr disables the positional mask;
  // kv_pos == nullptr means kv_pos[j] = j.
  const int32_t* q_pos = nullptr;
  const int32_t* kv_pos = nullptr;
  int32_t window = 0;
  // Optional additive mask [n_tokens][n_kv]; -inf entries are skipped like positional masks.
  const float* mask = nullptr;
  float scale = 1.0f;           // s = scale * q.k
  float softcap = 0.0f;         // > 0: s = softcap * tanh(s / softcap), before the mask
  // llama.cpp's CPU flash attention rounds Q to f16 and keeps the V accumulator in f16;
  // these emulate it (off: f32 throughout).
  bool q_f16 = false;
  bool v_acc_f16 = false;
};

// Attention for the query heads [h0, h0 + n_group) of token t that share KV head h0/n_group.
using AttentionGroupFn = void (*)(const AttentionArgs& a, int64_t t, int kv_head);

enum class RopeMode { kNormal = 0, kNeox = 2 };  // values as llama.cpp's rope type

struct RopeParams {
  int n_head = 0;
  int head_dim = 0;
  int n_rot = 0;                // rotated dims per head (<= head_dim, even); the rest are copied
  RopeMode mode = RopeMode::kNormal;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;      // linear position scaling (1 / factor)
  float attn_factor = 1.0f;     // multiplies cos and sin
  const float* freq_factors = nullptr;  // [n_rot / 2] divisors of theta (rope_freqs), or null
  int64_t stride = 0;           // floats between tokens; 0: n_head * head_dim
};

// In place on x [n_tokens][stride] (heads at x + h * head_dim); pos[t] is token t's position.
using RopeFn = void (*)(const RopeParams& p, float* x, int64_t n_tokens, const int32_t* pos);
// y = x / sqrt(mean(x^2) + eps) * w over one row of n; w may be null (no weight). y may be x.
using RmsNormFn = void (*)(const float* x, const float* w, float* y, int64_t n, float eps);
// In place over one row: x = softmax(x * scale + mask); mask may be null.
using SoftmaxFn = void (*)(float* x, int64_t n, float scale, const float* mask);
using UnaryFn = void (*)(const float* x, float* y, int64_t n);  // y may be x
// y = act(gate) * up; y may alias gate or up.
using GluFn = void (*)(const float* gate, const float* up, float* y, int64_t n);
// y[i] += sum_j c[j] * w[j * w_stride + i] for i < n, j < k, summed in order of j: the product
// of a row of coefficients with k rows of a matrix, for the backward pass's transposed products.
using AxpyRowsFn = void (*)(float* y, int64_t n, const float* c, const float* w, int64_t w_stride, int64_t k);

struct Kernels {
  Isa isa = Isa::kScalar;
  std::array<DotKernel, gguf::kTensorTypeSlots> dot{};  // indexed by the raw TensorType value
  QuantizeRowFn quantize_q8_0 = nullptr;
  QuantizeRowFn quantize_panel_q8_0 = nullptr;  // Q8_0 as a panel row (kPanelW)
  QuantizeRowFn quantize_q8_1 = nullptr;
  QuantizeRowFn quantize_q8_K = nullptr;
  QuantizeRowFn quantize_f16 = nullptr;
  QuantizeRowFn quantize_bf16 = nullptr;
  WidenRowFn widen_f16 = nullptr;
  WidenRowFn widen_bf16 = nullptr;
  // Weight quantizers of owl quantize, indexed by the raw TensorType value: the same bytes as
  // quant::quantize_row (llama.cpp's quantize_row_<type>_ref), faster. nullptr: no variant
  // (quantize_weight_row falls back to the reference).
  std::array<QuantizeRowFn, gguf::kTensorTypeSlots> quantize_weights{};
  RmsNormFn rms_norm = nullptr;
  SoftmaxFn softmax = nullptr;
  RopeFn rope = nullptr;
  UnaryFn silu = nullptr;
  UnaryFn gelu = nullptr;       // tanh approximation, rounded through f16 as llama.cpp's table
  GluFn swiglu = nullptr;
  GluFn geglu = nullptr;
  AxpyRowsFn axpy_rows = nullptr;
  AttentionGroupFn attention_group = nullptr;

  const DotKernel& dot_for(TensorType t) const { return dot[static_cast<uint32_t>(t)]; }
};

// One f32 row of n elements to the weight format `type`, with the table's variant where it has
// one; false for types without a quantizer (as quant::quantize_row).
bool quantize_weight_row(const Kernels& k, TensorType type, const float* x, void* y, int64_t n);

// The table for one ISA (which must be supported by this CPU; ops without a variant for it
// fall back to the next lower ISA, then to the reference). The AVX-512 variants need VNNI too:
// without it an AVX-512 table holds the AVX2 ones.
Kernels make_kernels(Isa isa);
// Detects the CPU and applies OWL_ISA. Every call (one per Context) logs the choice on stderr
// when OWL_ISA is set or OWL_VERBOSE=1, and says nothing otherwise.
Kernels make_kernels();

// ---- matmul: Y = X W^T --------------------------------------------------------------------
struct MatmulArgs {
  TensorType w_type = TensorType::F32;
  const void* w = nullptr;  // [n_out] rows of row_bytes(w_type, n_in) bytes, contiguous
  const float* x = nullptr;  // [n_rows][x_stride] f32
  float* y = nullptr;        // [n_rows][y_stride] f32
  int64_t n_in = 0;
  int64_t n_out = 0;
  int64_t n_rows = 0;
  int64_t x_stride = 0;  // floats; 0: n_in
  int64_t y_stride = 0;  // floats; 0: n_out
  void* scratch = nullptr;  // matmul_scratch_bytes(); holds the converted activations
  size_t scratch_bytes = 0;
  // Each row's outputs independent of n_rows: the weight type's kernel does not change with the
  // row count (a type with a panel uses it for every count; see matmul below).
  bool batch_invariant = false;
  // w is in the packed layout (pack_weights; the kernels must read_packed the type). Not with
  // batch_invariant: the packed decode kernel sums in another order than the panel.
  bool w_packed = false;
};

bool supports_matmul(const Kernels& k, TensorType w_type);
// The converter of f32 activation rows to `act` (a DotKernel act_type other than F32).
QuantizeRowFn activation_quantizer(const Kernels& k, TensorType act);
// Bytes of scratch matmul() needs for these shapes (0 for float weights).
size_t matmul_scratch_bytes(const Kernels& k, TensorType w_type, int64_t n_in, int64_t n_rows);
// Converts X once to the dot's activation format (as llama.cpp does for the weight type), then
// splits the output over the pool: decode in contiguous runs of weight rows, prefill in
// (weight rows x activation rows) blocks walked in kTileW x kTileX register tiles.
//
// Every output is one kernel's sum over n_in, never split across tasks, so the split over the
// pool's threads does not change it: Y does not depend on the thread count. Nor on where a row
// sits among the n_rows: kernels compute each row alike. It depends on n_rows only where the
// row count picks the kernel, a type's panel above DotKernel::panel_above rows, whose sums run
// in another order than its dot and tile; batch_invariant keeps the panel for every row count.
// ---- packed weights --------------------------------------------------------------------------
// A Q4_0 matrix whose rows are a multiple of kPanelW can be repacked once, at load, into groups of
// kPanelW rows that a kernel reads as one sequential stream with row l of the group in int32
// lane l: per group, for each 32-element block b, four 64-byte vectors whose lane l holds row
// l's quant bytes 4j..4j+3 (j = 0..3: elements 4j..4j+3 in the low nibbles, 16+4j.. in the high),
// then, after all blocks, the 16 rows' f16 scales of each block (32 bytes per block). A group
// is kPanelW GGUF rows long, so the packed matrix has the GGUF matrix's size and row r's group
// starts where row r starts. The GGUF layout interleaves 18-byte blocks of one row; a decode
// matmul read four rows side by side and spent most of its instructions taking them apart.
bool packable(TensorType type, int64_t n_out, int64_t n_in);
// Writes the packed layout of W [n_out][n_in] (GGUF rows) to `out` (row_bytes * n_out bytes):
// the reference, byte by byte; kernels that read the layout write it with DotKernel::pack.
void pack_weights(TensorType type, const void* w, int64_t n_out, int64_t n_in, void* out);
// Whether these kernels can multiply by packed weights of `type`.
bool reads_packed(const Kernels& k, TensorType type);

void matmul(const Kernels& k, core::ThreadPool& pool, const MatmulArgs& a);
// Up to kMaxMatmulGroup matmuls of the same activations (equal x, x_stride, n_in, n_rows; one
// scratch, the first's): X is converted once where their weight types take the same activation
// format, and in prefill all their tasks run as one job (Q, K and V; gate and up). Otherwise
// they run one after another. Each result is the one matmul() gives alone.
inline constexpr size_t kMaxMatmulGroup = 4;
void matmul(const Kernels& k, core::ThreadPool& pool, std::span<const MatmulArgs> group);

// ---- attention over an f16 KV cache (what llama.cpp's CPU flash-attention path computes) ---
// Online softmax per query row, f32 scores and accumulators; parallel over tokens x KV heads.
void attention(const Kernels& k, core::ThreadPool& pool, const AttentionArgs& a);

// ---- memory read bandwidth ------------------------------------------------------------------
// The machine's read bandwidth in GB/s, the bound of a decode step: the pool's threads stream
// their shares of a buffer of `bytes` (far larger than the caches); the best of `passes`.
// Figures for benchmarks, next to what a model reads per token.
class ReadBandwidth {
 public:
  explicit ReadBandwidth(size_t bytes = size_t{1} << 30);
  double measure(core::ThreadPool& pool, int passes = 3);

 private:
  size_t n_words() const { return buffer_.size() / sizeof(uint64_t); }
  core::HugePageBuffer buffer_;  // in 2 MiB pages, as the weights are
  std::atomic<uint64_t> sink_{0};  // keeps the sums alive
};

}  // namespace owl::kernels
