// export_hf: the inverse of import_hf — GGUF weights back to Hugging Face names, row order and
// norm convention, one model.safetensors, config.json and the tokenizer files.
#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "convert/hf.h"
#include "convert/hf_names.h"
#include "convert/hf_tokenizer.h"
#include "convert/safetensors.h"
#include "core/files.h"
#include "gguf/keys.h"
#include "model/arch_registry.h"
#include "model/config.h"
#include "quant/half.h"
#include "quant/quant.h"

namespace owl::convert {

namespace keys = gguf::keys;

using core::make_error;
using gguf::TensorType;

namespace {

std::vector<float> dequantize(const gguf::TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const int64_t row = gguf::row_bytes(t.type, t.ne[0]);
  for (int64_t r = 0; r < t.n_rows(); ++r) {
    quant::dequantize_row(t.type, t.data + r * row, out.data() + r * t.ne[0], t.ne[0]);
  }
  return out;
}

// GGUF's interleaved Q/K rows [h][d/2][2] -> HF's rotate-half order [h][2][d/2].
std::vector<float> unpermute_rows(const std::vector<float>& w, int64_t n_rows, int64_t n_cols, int64_t n_heads) {
  std::vector<float> out(w.size());
  const int64_t d = n_rows / n_heads;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < d / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        std::copy_n(w.data() + (h * d + 2 * i + j) * n_cols, n_cols, out.data() + (h * d + j * (d / 2) + i) * n_cols);
      }
    }
  }
  return out;
}

std::string auto_dtype(const gguf::GgufFile& f) {
  bool all_f16 = true, all_bf16 = true;
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (t.n_dims < 2) continue;
    all_f16 &= t.type == TensorType::F16;
    all_bf16 &= t.type == TensorType::BF16;
  }
  return all_f16 ? "F16" : all_bf16 ? "BF16" : "F32";
}

nlohmann::ordered_json make_config(const gguf::GgufFile& f, const model::ModelConfig& c, const model::ArchInfo& arch,
                                   const std::string& dtype, int64_t n_vocab) {
  nlohmann::ordered_json j;
  j["architectures"] = {std::string(arch.hf_class)};
  j["model_type"] = std::string(arch.hf_model_type);
  j["hidden_size"] = c.n_embd;
  j["intermediate_size"] = c.n_ff;
  j["num_hidden_layers"] = c.n_layer;
  j["num_attention_heads"] = c.n_head;
  j["num_key_value_heads"] = c.n_head_kv;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.n_ctx_train;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_freq_base;
  j["vocab_size"] = n_vocab;
  j["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  j["torch_dtype"] = dtype == "F16" ? "float16" : dtype == "BF16" ? "bfloat16" : "float32";
  if (auto bos = f.get_int(keys::kTokenizerBosId)) j["bos_token_id"] = *bos;
  if (auto eos = f.get_int(keys::kTokenizerEosId)) j["eos_token_id"] = *eos;
  j["hidden_act"] = c.activation == model::Activation::kSilu ? "silu" : "gelu_pytorch_tanh";
  if (c.rope_freq_scale != 1.0f) j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 1.0f / c.rope_freq_scale}};
  if (arch.hf_window_softcap) {
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["query_pre_attn_scalar"] = c.head_dim;
    j["sliding_window"] = c.sliding_window;
    j["attn_logit_softcapping"] = c.attn_softcap;
    j["final_logit_softcapping"] = c.final_softcap;
  }
  if (const gguf::TensorInfo* r = f.find_tensor("rope_freqs.weight"); r && r->type == TensorType::F32) {
    // GGUF-only frequency factors (Llama 3.1): kept so that import restores them exactly.
    j["owl_rope_freqs"] = dequantize(*r);
  }
  return j;
}

}  // namespace

core::Result<ExportSummary> export_hf(const ExportOptions& o) {
  auto file = gguf::GgufFile::open(o.model);
  if (!file) return file.error();
  auto config = model::load_config(*file);
  if (!config) return config.error();
  const model::ArchInfo* arch = model::find_arch(config->arch);
  if (!arch || arch->hf_class.empty()) {
    return make_error("export: {}: architecture '{}' has no Hugging Face mapping", o.model, config->arch);
  }
  std::string dtype = o.dtype == "auto" ? auto_dtype(*file) : o.dtype;
  std::transform(dtype.begin(), dtype.end(), dtype.begin(), ::toupper);
  if (dtype != "F32" && dtype != "F16" && dtype != "BF16") return make_error("export: dtype '{}' (f32, f16, bf16)", o.dtype);
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) return make_error("export: cannot create {}: {}", o.out_dir, ec.message());

  std::vector<std::vector<uint8_t>> buffers;
  buffers.reserve(file->tensors().size());
  std::vector<SafeTensorOut> out;
  int64_t n_vocab = 0;
  for (const gguf::TensorInfo& t : file->tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // in config.json
    auto name = detail::gguf_to_hf_name(*arch, t.name);
    if (!name) return make_error("export: {}: tensor '{}' has no Hugging Face name", o.model, t.name);
    if (t.name == "token_embd.weight") n_vocab = t.ne[1];
    std::vector<float> w = dequantize(t);
    const bool is_q = t.name.find("attn_q.weight") != std::string::npos;
    const bool is_k = t.name.find("attn_k.weight") != std::string::npos;
    if (arch->hf_permute_qk && (is_q || is_k)) {
      w = unpermute_rows(w, t.ne[1], t.ne[0], is_q ? config->n_head : config->n_head_kv);
    }
    if (arch->hf_norm_plus_one && t.name.find("norm.weight") != std::string::npos) {
      for (float& v : w) v -= 1.0f;
    }
    const std::string td = t.n_dims < 2 ? "F32" : dtype;  // vectors stay F32, as in GGUF
    std::vector<uint8_t>& bytes = buffers.emplace_back();
    if (td == "F32") {
      bytes.resize(w.size() * 4);
      std::memcpy(bytes.data(), w.data(), bytes.size());
    } else {
      bytes.resize(w.size() * 2);
      for (size_t i = 0; i < w.size(); ++i) {
        const uint16_t h = td == "F16" ? quant::f32_to_f16(w[i]) : quant::f32_to_bf16(w[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
    std::vector<int64_t> shape;
    for (int d = t.n_dims - 1; d >= 0; --d) shape.push_back(t.ne[d]);
    out.push_back({*name, td, shape, bytes});
  }
  OWL_TRY(write_safetensors(o.out_dir + "/model.safetensors", out, {{"format", "pt"}}));
  const std::string cfg = make_config(*file, *config, *arch, dtype, n_vocab).dump(2);
  auto f = core::AtomicFile::create(o.out_dir + "/config.json");
  if (!f) return f.error();
  OWL_TRY(f->write(cfg));
  OWL_TRY(f->commit());
  OWL_TRY(detail::write_hf_tokenizer(*file, o.out_dir));
  return ExportSummary{config->arch, static_cast<int64_t>(out.size()), dtype};
}

}  // namespace owl::convert
