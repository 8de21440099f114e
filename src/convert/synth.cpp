#include "convert/synth.h"

#include <cmath>
#include <thread>
#include <vector>

#include "gguf/file_type.h"
#include "gguf/gguf.h"
#include "gguf/keys.h"
#include "quant/quant.h"
#include "quant/traits.h"

namespace owl::convert {

namespace keys = gguf::keys;

namespace {

using core::make_error;
using gguf::TensorType;
using gguf::Value;

// xoshiro256** seeded by splitmix64: fast, and the same stream on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : state_) s = splitmix(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // Box-Muller: two standard normals per call.
  void normal_pair(float& a, float& b) {
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    a = static_cast<float>(r * std::cos(2.0 * M_PI * u2));
    b = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t state_[4];
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;  // ne: shape[0] is the row length
  bool is_norm = false;
};

std::vector<TensorPlan> llama_tensors(const SynthOptions& o) {
  const int64_t head_dim = o.n_embd / o.n_head;
  const int64_t n_embd_kv = head_dim * o.n_head_kv;
  std::vector<TensorPlan> plan = {{"token_embd.weight", {o.n_embd, o.n_vocab}}};
  for (int64_t l = 0; l < o.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    plan.push_back({p + "attn_norm.weight", {o.n_embd}, true});
    plan.push_back({p + "attn_q.weight", {o.n_embd, o.n_embd}});
    plan.push_back({p + "attn_k.weight", {o.n_embd, n_embd_kv}});
    plan.push_back({p + "attn_v.weight", {o.n_embd, n_embd_kv}});
    plan.push_back({p + "attn_output.weight", {o.n_embd, o.n_embd}});
    plan.push_back({p + "ffn_norm.weight", {o.n_embd}, true});
    plan.push_back({p + "ffn_gate.weight", {o.n_embd, o.n_ff}});
    plan.push_back({p + "ffn_up.weight", {o.n_embd, o.n_ff}});
    plan.push_back({p + "ffn_down.weight", {o.n_ff, o.n_embd}});
  }
  plan.push_back({"output_norm.weight", {o.n_embd}, true});
  plan.push_back({"output.weight", {o.n_embd, o.n_vocab}});
  return plan;
}

// Fills and converts one tensor, rows split across threads. Each row has its own random stream,
// so the file is the same for any thread count.
std::vector<uint8_t> make_tensor(const TensorPlan& plan, TensorType type, uint64_t seed, int n_threads) {
  const int64_t n_cols = plan.shape[0];
  int64_t n_rows = 1;
  for (size_t d = 1; d < plan.shape.size(); ++d) n_rows *= plan.shape[d];
  const auto bytes_per_row = static_cast<size_t>(gguf::row_bytes(type, n_cols));
  std::vector<uint8_t> out(bytes_per_row * static_cast<size_t>(n_rows));
  auto work = [&](int64_t row_begin, int64_t row_end) {
    std::vector<float> row(static_cast<size_t>(n_cols) + 1);
    for (int64_t r = row_begin; r < row_end; ++r) {
      Rng rng(seed ^ (static_cast<uint64_t>(r) * 0x9e3779b97f4a7c15ull));
      for (int64_t c = 0; c < n_cols; c += 2) rng.normal_pair(row[c], row[c + 1]);
      for (int64_t c = 0; c < n_cols; ++c) row[c] = plan.is_norm ? 1.0f + 0.1f * row[c] : 0.02f * row[c];
      quant::quantize_row(type, row.data(), out.data() + static_cast<size_t>(r) * bytes_per_row, n_cols);
    }
  };
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(n_threads, n_rows));
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) {
    pool.emplace_back(work, n_rows * t / threads, n_rows * (t + 1) / threads);
  }
  work(0, n_rows / threads);
  for (std::thread& th : pool) th.join();
  return out;
}

core::Status check_shape(const SynthOptions& o) {
  if (o.arch != "llama") return make_error("synth: architecture '{}' not supported (llama only)", o.arch);
  auto positive = [](const char* name, int64_t v) -> core::Status {
    if (v <= 0) return make_error("synth: {} must be positive, got {}", name, v);
    return {};
  };
  OWL_TRY(positive("--n-embd", o.n_embd));
  OWL_TRY(positive("--n-layer", o.n_layer));
  OWL_TRY(positive("--n-head", o.n_head));
  OWL_TRY(positive("--n-head-kv", o.n_head_kv));
  OWL_TRY(positive("--n-ff", o.n_ff));
  OWL_TRY(positive("--n-ctx", o.n_ctx));
  if (o.n_embd % o.n_head != 0) {
    return make_error("synth: --n-embd {} is not a multiple of --n-head {}", o.n_embd, o.n_head);
  }
  if (o.n_head % o.n_head_kv != 0) {
    return make_error("synth: --n-head {} is not a multiple of --n-head-kv {}", o.n_head, o.n_head_kv);
  }
  if ((o.n_embd / o.n_head) % 2 != 0) {
    return make_error("synth: head dimension {} must be even for RoPE", o.n_embd / o.n_head);
  }
  const quant::FormatTraits& traits = quant::format_traits(o.type);
  if (!traits.weight) return make_error("synth: --type {} is not a weight type", traits.info().name);
  return {};
}

core::Status add_tokenizer(const SynthOptions& o, gguf::GgufWriter& writer, int64_t& n_vocab) {
  if (o.vocab_from.empty()) {
    // A byte-fallback SentencePiece vocabulary: <unk> <s> </s>, the 256 bytes, filler pieces.
    if (o.n_vocab < 3 + 256) return make_error("synth: --n-vocab {} is below the 259 byte-fallback tokens", o.n_vocab);
    gguf::Array tokens{gguf::ValueType::STRING, {}};
    gguf::Array scores{gguf::ValueType::F32, {}};
    gguf::Array types{gguf::ValueType::I32, {}};
    for (int64_t i = 0; i < o.n_vocab; ++i) {
      std::string piece = i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>"
                        : i < 259 ? fmt::format("<0x{:02X}>", i - 3) : fmt::format("\u2581tok{}", i);
      tokens.items.push_back(Value::string(std::move(piece)));
      scores.items.push_back(Value::f32(i < 259 ? 0.0f : -static_cast<float>(i)));
      types.items.push_back(Value::i32(i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
    }
    writer.set(keys::kTokenizerModel, Value::string("llama"));
    writer.set(keys::kTokenizerTokens, Value::array(std::move(tokens)));
    writer.set(keys::kTokenizerScores, Value::array(std::move(scores)));
    writer.set(keys::kTokenizerTokenType, Value::array(std::move(types)));
    writer.set(keys::kTokenizerBosId, Value::u32(1));
    writer.set(keys::kTokenizerEosId, Value::u32(2));
    writer.set(keys::kTokenizerUnknownId, Value::u32(0));
    n_vocab = o.n_vocab;
    return {};
  }
  auto vocab = gguf::GgufFile::open(o.vocab_from);
  if (!vocab) return vocab.error();
  auto tokens = vocab->get_string_array(keys::kTokenizerTokens);
  if (!tokens) return tokens.error();
  for (const gguf::MetadataEntry& e : vocab->metadata()) {
    if (e.key.rfind(keys::kTokenizerPrefix, 0) == 0) writer.set(e.key, e.value);
  }
  n_vocab = static_cast<int64_t>(tokens->size());
  return {};
}

}  // namespace

core::Status synthesize_model(const SynthOptions& options) {
  OWL_TRY(check_shape(options));
  SynthOptions o = options;
  gguf::GgufWriter writer;
  const std::string& a = o.arch;
  writer.set(keys::kGeneralArchitecture, Value::string(a));
  writer.set(keys::kGeneralName, Value::string(fmt::format("synth-{}-{}x{}", a, o.n_layer, o.n_embd)));
  writer.set(keys::kGeneralFileType, Value::u32(static_cast<uint32_t>(gguf::file_type_of_weights(o.type))));
  if (gguf::type_info(o.type).quantized) writer.set(keys::kGeneralQuantizationVersion, Value::u32(2));
  writer.set(keys::arch_key(a, keys::kContextLength), Value::u32(static_cast<uint32_t>(o.n_ctx)));
  writer.set(keys::arch_key(a, keys::kEmbeddingLength), Value::u32(static_cast<uint32_t>(o.n_embd)));
  writer.set(keys::arch_key(a, keys::kBlockCount), Value::u32(static_cast<uint32_t>(o.n_layer)));
  writer.set(keys::arch_key(a, keys::kFeedForwardLength), Value::u32(static_cast<uint32_t>(o.n_ff)));
  writer.set(keys::arch_key(a, keys::kHeadCount), Value::u32(static_cast<uint32_t>(o.n_head)));
  writer.set(keys::arch_key(a, keys::kHeadCountKv), Value::u32(static_cast<uint32_t>(o.n_head_kv)));
  writer.set(keys::arch_key(a, keys::kLayerNormRmsEpsilon), Value::f32(1e-5f));
  writer.set(keys::arch_key(a, keys::kRopeDimensionCount), Value::u32(static_cast<uint32_t>(o.n_embd / o.n_head)));
  writer.set(keys::arch_key(a, keys::kRopeFreqBase), Value::f32(10000.0f));
  OWL_TRY(add_tokenizer(o, writer, o.n_vocab));

  const std::vector<TensorPlan> plan = llama_tensors(o);
  std::vector<std::vector<uint8_t>> data(plan.size());
  const int64_t block = gguf::type_info(o.type).block_size;
  for (size_t i = 0; i < plan.size(); ++i) {
    const TensorPlan& t = plan[i];
    TensorType type = o.type;
    if (t.shape[0] % block != 0) type = TensorType::F16;  // e.g. a 172-wide ffn_down
    if (t.is_norm) type = TensorType::F32;
    data[i] = make_tensor(t, type, o.seed * 0x100000001b3ull + i, o.n_threads);
    OWL_TRY(writer.add_tensor(t.name, type, t.shape, data[i]));
  }
  return writer.write(o.output);
}

}  // namespace owl::convert
