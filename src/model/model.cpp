#include "model/model.h"

#include <chrono>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

namespace owl::model {
namespace {

using core::make_error;
using gguf::TensorType;

class WeightLoader {
 public:
  WeightLoader(Model& model, const kernels::Kernels& kernels) : model_(model), kernels_(kernels) {}

  // A matrix with ne = [n_in, n_out], used by matmul (or by row lookup for token_embd).
  core::Status matrix(const std::string& name, int64_t n_in, int64_t n_out, Weight& out, bool required = true) {
    const gguf::TensorInfo* t = model_.file.find_tensor(name);
    if (t == nullptr) {
      if (required) return make_error("model: {}: missing tensor '{}'", model_.file.path(), name);
      return {};
    }
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out) {
      return make_error("model: tensor '{}' has shape {} (expected [{}, {}])", name, shape(*t), n_in, n_out);
    }
    if (!kernels::supports_matmul(kernels_, t->type)) {
      return make_error("model: tensor '{}' has type {}, which owl cannot multiply", name,
                        gguf::type_info(t->type).name);
    }
    out = Weight{t->type, t->data, n_in, n_out};
    return {};
  }

  // A vector of n floats (norm weights, biases, rope factors), converted to F32 when stored otherwise.
  core::Status vector(const std::string& name, int64_t n, Weight& out, bool required = true) {
    const gguf::TensorInfo* t = model_.file.find_tensor(name);
    if (t == nullptr) {
      if (required) return make_error("model: {}: missing tensor '{}'", model_.file.path(), name);
      return {};
    }
    if (t->n_elements() != n || t->ne[0] != n) {
      return make_error("model: tensor '{}' has shape {} (expected [{}])", name, shape(*t), n);
    }
    if (t->type == TensorType::F32) {
      out = Weight{TensorType::F32, t->data, n, 1};
      return {};
    }
    std::vector<float>& values = model_.converted.emplace_back(static_cast<size_t>(n));
    if (!quant::dequantize_row(t->type, t->data, values.data(), n)) {
      return make_error("model: tensor '{}' has type {}, not a float type", name, gguf::type_info(t->type).name);
    }
    out = Weight{TensorType::F32, values.data(), n, 1};
    return {};
  }

 private:
  static std::string shape(const gguf::TensorInfo& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
  }
  Model& model_;
  const kernels::Kernels& kernels_;
};

core::Status load_layer(WeightLoader& w, const ModelConfig& c, int64_t il, LayerWeights& l) {
  const std::string p = "blk." + std::to_string(il) + ".";
  const int64_t n_embd = c.n_embd, n_q = c.n_embd_q(), n_kv = c.n_embd_kv();
  OWL_TRY(w.vector(p + "attn_norm.weight", n_embd, l.attn_norm));
  OWL_TRY(w.matrix(p + "attn_qkv.weight", n_embd, n_q + 2 * n_kv, l.attn_qkv, false));
  if (!l.attn_qkv.present()) {
    OWL_TRY(w.matrix(p + "attn_q.weight", n_embd, n_q, l.attn_q));
    OWL_TRY(w.matrix(p + "attn_k.weight", n_embd, n_kv, l.attn_k));
    OWL_TRY(w.matrix(p + "attn_v.weight", n_embd, n_kv, l.attn_v));
  }
  if (c.qkv_bias) {
    OWL_TRY(w.vector(p + "attn_q.bias", n_q, l.attn_q_bias));
    OWL_TRY(w.vector(p + "attn_k.bias", n_kv, l.attn_k_bias));
    OWL_TRY(w.vector(p + "attn_v.bias", n_kv, l.attn_v_bias));
  }
  if (c.qk_norm) {
    OWL_TRY(w.vector(p + "attn_q_norm.weight", c.head_dim, l.attn_q_norm));
    OWL_TRY(w.vector(p + "attn_k_norm.weight", c.head_dim, l.attn_k_norm));
  }
  OWL_TRY(w.matrix(p + "attn_output.weight", n_q, n_embd, l.attn_output));
  OWL_TRY(w.vector(p + "ffn_norm.weight", n_embd, l.ffn_norm));
  OWL_TRY(w.matrix(p + "ffn_gate.weight", n_embd, c.n_ff, l.ffn_gate, false));
  // Without ffn_gate, ffn_up holds gate (first n_ff rows) and up (phi3).
  OWL_TRY(w.matrix(p + "ffn_up.weight", n_embd, l.ffn_gate.present() ? c.n_ff : 2 * c.n_ff, l.ffn_up));
  OWL_TRY(w.matrix(p + "ffn_down.weight", c.n_ff, n_embd, l.ffn_down));
  if (c.post_norms) {
    OWL_TRY(w.vector(p + "post_attention_norm.weight", n_embd, l.post_attention_norm));
    OWL_TRY(w.vector(p + "post_ffw_norm.weight", n_embd, l.post_ffw_norm));
  }
  return {};
}

// Packs every matrix the CPU's best kernels read packed (kernels.h, pack_weights) into one
// buffer in 2 MiB pages, then drops the GGUF copies' pages from the map.
void pack_matrices(Model& model) {
  const kernels::Kernels k = kernels::make_kernels();
  std::vector<Weight*> todo;
  auto consider = [&](Weight& w) {
    if (w.present() && w.n_out > 1 && kernels::reads_packed(k, w.type) && kernels::packable(w.type, w.n_out, w.n_in)) {
      todo.push_back(&w);
    }
  };
  consider(model.weights.output);
  for (LayerWeights& l : model.weights.layers) {
    for (Weight* w : {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_qkv, &l.attn_output, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
      consider(*w);
    }
  }
  if (todo.empty()) return;
  const auto start = std::chrono::steady_clock::now();
  std::vector<size_t> offset(todo.size() + 1, 0);
  for (size_t i = 0; i < todo.size(); ++i) {
    const size_t bytes = static_cast<size_t>(gguf::row_bytes(todo[i]->type, todo[i]->n_in) * todo[i]->n_out);
    offset[i + 1] = offset[i] + (bytes + 63) / 64 * 64;  // each matrix 64-byte aligned
  }
  model.packed = std::make_unique<core::HugePageBuffer>(offset.back());
  core::ThreadPool pool(0);
  pool.parallel_for(static_cast<int64_t>(todo.size()), [&](int64_t i, int) {
    Weight& w = *todo[static_cast<size_t>(i)];
    uint8_t* out = model.packed->data() + offset[static_cast<size_t>(i)];
    k.dot_for(w.type).pack(w.data, w.n_out, w.n_in, out);
    model.file.release(w.data, static_cast<size_t>(gguf::row_bytes(w.type, w.n_in) * w.n_out));
    w.packed = out;
  });
  model.pack_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

core::Result<std::unique_ptr<Model>> load_model(const std::string& path, const LoadOptions& options) {
  auto file = gguf::GgufFile::open(path, {.populate = true});
  if (!file) return file.error();
  auto model = std::make_unique<Model>();
  model->file = std::move(*file);
  auto config = load_config(model->file);
  if (!config) return config.error();
  ModelConfig& c = model->config = std::move(*config);
  const kernels::Kernels kernels = kernels::make_kernels(kernels::Isa::kScalar);
  WeightLoader w(*model, kernels);
  ModelWeights& weights = model->weights;

  const gguf::TensorInfo* embd = model->file.find_tensor("token_embd.weight");
  if (embd == nullptr) return make_error("model: {}: missing tensor 'token_embd.weight'", path);
  if (c.n_vocab == 0) c.n_vocab = embd->ne[1];
  OWL_TRY(w.matrix("token_embd.weight", c.n_embd, c.n_vocab, weights.token_embd));
  OWL_TRY(w.vector("output_norm.weight", c.n_embd, weights.output_norm));
  if (!c.tied_output) OWL_TRY(w.matrix("output.weight", c.n_embd, c.n_vocab, weights.output, false));
  if (!weights.output.present()) weights.output = weights.token_embd;
  OWL_TRY(w.vector("rope_freqs.weight", c.n_rot / 2, weights.rope_freqs, false));
  weights.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il) OWL_TRY(load_layer(w, c, il, weights.layers[il]));
  if (options.pack_weights) pack_matrices(*model);
  return model;
}

}  // namespace owl::model
