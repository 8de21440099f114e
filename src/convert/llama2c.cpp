// import_llama2c: a llama2.c checkpoint (karpathy/llama2.c run.c, legacy format) -> GGUF llama.
// File: 7 int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: separate
// classifier), seq_len}, then float32 arrays: token_embedding [vocab][dim], rms_att [L][dim],
// wq [L][dim][dim], wk [L][kv_dim][dim], wv [L][kv_dim][dim], wo [L][dim][dim],
// rms_ffn [L][dim], w1 [L][hidden][dim], w2 [L][dim][hidden], w3 [L][hidden][dim],
// rms_final [dim], freq_cis_real/imag [seq_len][head_size / 2] (skipped), wcls [vocab][dim].
// Matrices are [out][in] row-major, GGUF's layout; run.c rotates adjacent pairs, as GGUF
// llama does, so Q/K need no permutation.
#include <cstring>

#include "convert/hf.h"
#include "convert/hf_names.h"
#include "core/files.h"
#include "gguf/file_type.h"
#include "gguf/gguf.h"
#include "gguf/keys.h"

namespace owl::convert {

namespace keys = gguf::keys;

using core::make_error;

core::Status import_llama2c(const Llama2cOptions& o) {
  if (!o.type.empty() && !gguf::find_file_type(o.type)) return make_error("import: unknown --type '{}'", o.type);
  auto map = core::MappedFile::open(o.checkpoint);
  if (!map) return map.error();
  if (map->size() < 28) return make_error("llama2c {}: {} bytes, too short for the header", o.checkpoint, map->size());
  int32_t h[7];
  std::memcpy(h, map->data(), sizeof(h));
  const bool shared = h[5] > 0;
  const int64_t dim = h[0], hidden = h[1], n_layer = h[2], n_head = h[3], n_head_kv = h[4];
  const int64_t vocab = shared ? h[5] : -static_cast<int64_t>(h[5]), seq_len = h[6];
  if (dim <= 0 || hidden <= 0 || n_layer <= 0 || n_head <= 0 || n_head_kv <= 0 || vocab <= 0 || seq_len <= 0 ||
      dim % n_head != 0 || n_head % n_head_kv != 0 || dim > (1 << 16) || hidden > (1 << 18) || n_layer > 1024 ||
      vocab > (1 << 22) || seq_len > (1 << 22)) {
    return make_error("llama2c {}: header {} {} {} {} {} {} {} is not a valid model shape", o.checkpoint, h[0], h[1],
                      h[2], h[3], h[4], h[5], h[6]);
  }
  const int64_t head = dim / n_head, kv_dim = head * n_head_kv;
  auto vocab_file = gguf::GgufFile::open(o.vocab_from);
  if (!vocab_file) return vocab_file.error();
  auto tokens = vocab_file->get_string_array(keys::kTokenizerTokens);
  if (!tokens) return tokens.error();
  if (static_cast<int64_t>(tokens->size()) != vocab) {
    return make_error("llama2c {}: vocabulary of {} tokens, {} has {}", o.checkpoint, vocab, o.vocab_from, tokens->size());
  }
  // Walk the arrays in file order.
  const float* p = reinterpret_cast<const float*>(map->data() + 28);
  const float* end = reinterpret_cast<const float*>(map->data() + map->size());
  gguf::GgufWriter w;
  auto take = [&](int64_t n) -> const float* {
    const float* at = p;
    p = (end - p < n) ? end + 1 : p + n;  // past the end marks truncation, checked below
    return at;
  };
  struct Array {
    std::string name;
    int64_t rows, cols;  // per layer when layered
    bool layered;
    const float* data = nullptr;
  };
  std::vector<Array> arrays = {
      {"token_embd", vocab, dim, false}, {"attn_norm", 1, dim, true},      {"attn_q", dim, dim, true},
      {"attn_k", kv_dim, dim, true},     {"attn_v", kv_dim, dim, true},    {"attn_output", dim, dim, true},
      {"ffn_norm", 1, dim, true},        {"ffn_gate", hidden, dim, true},  {"ffn_down", dim, hidden, true},
      {"ffn_up", hidden, dim, true},     {"output_norm", 1, dim, false},
  };
  for (Array& a : arrays) a.data = take(a.rows * a.cols * (a.layered ? n_layer : 1));
  take(seq_len * head);  // freq_cis_real and freq_cis_imag, head / 2 each
  const float* wcls = shared ? arrays[0].data : take(vocab * dim);
  if (p > end) return make_error("llama2c {}: file ends before the weights of the header's shape", o.checkpoint);

  w.set(keys::kGeneralArchitecture, gguf::Value::string("llama"));
  w.set(keys::kGeneralName, gguf::Value::string(o.name));
  auto u32 = [](int64_t v) { return gguf::Value::u32(static_cast<uint32_t>(v)); };
  w.set(keys::arch_key("llama", keys::kContextLength), u32(seq_len));
  w.set(keys::arch_key("llama", keys::kEmbeddingLength), u32(dim));
  w.set(keys::arch_key("llama", keys::kFeedForwardLength), u32(hidden));
  w.set(keys::arch_key("llama", keys::kHeadCount), u32(n_head));
  w.set(keys::arch_key("llama", keys::kHeadCountKv), u32(n_head_kv));
  w.set(keys::arch_key("llama", keys::kBlockCount), u32(n_layer));
  w.set(keys::arch_key("llama", keys::kRopeDimensionCount), u32(head));
  w.set(keys::arch_key("llama", keys::kLayerNormRmsEpsilon), gguf::Value::f32(1e-5f));
  w.set(keys::kGeneralFileType, gguf::Value::u32(static_cast<uint32_t>(gguf::FileType::F32)));
  for (const gguf::MetadataEntry& e : vocab_file->metadata()) {
    if (e.key.rfind(keys::kTokenizerPrefix, 0) == 0) w.set(e.key, e.value);
  }
  auto add = [&](const std::string& name, const float* data, int64_t rows, int64_t cols) {
    const int64_t ne2[2] = {cols, rows};
    const int64_t ne1[1] = {cols};
    return w.add_tensor(name, gguf::TensorType::F32, rows == 1 ? std::span<const int64_t>(ne1) : std::span<const int64_t>(ne2),
                        {reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(rows * cols) * 4});
  };
  OWL_TRY(add("token_embd.weight", arrays[0].data, vocab, dim));
  OWL_TRY(add("output_norm.weight", arrays[10].data, 1, dim));
  OWL_TRY(add("output.weight", wcls, vocab, dim));
  for (int64_t l = 0; l < n_layer; ++l) {
    for (size_t i = 1; i < 10; ++i) {
      const Array& a = arrays[i];
      OWL_TRY(add("blk." + std::to_string(l) + "." + a.name + ".weight", a.data + l * a.rows * a.cols, a.rows, a.cols));
    }
  }
  return detail::write_as_type(w, o.output, o.type, o.n_threads);
}

}  // namespace owl::convert
