// import_hf: config.json + safetensors + tokenizer files -> GGUF, the way llama.cpp's
// convert_hf_to_gguf.py lays models out (Q/K rows of llama interleaved, gemma norms as 1 + w,
// 1-D tensors in F32), then an optional quantization pass.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "convert/hf.h"
#include "convert/hf_names.h"
#include "convert/hf_tokenizer.h"
#include "convert/safetensors.h"
#include "core/files.h"
#include "gguf/file_type.h"
#include "gguf/keys.h"
#include "quant/half.h"
#include "quantize/quantize.h"

namespace owl::convert {

namespace keys = gguf::keys;

using core::make_error;
using nlohmann::json;

namespace {

struct HfConfig {
  const model::ArchInfo* arch = nullptr;
  json j;
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, head_dim = 0, n_ctx = 0;
};

core::Result<HfConfig> read_config(const std::string& dir) {
  auto text = core::read_file(dir + "/config.json");
  if (!text) return text.error();
  HfConfig c;
  c.j = json::parse(*text, nullptr, false);
  if (c.j.is_discarded() || !c.j.is_object()) return make_error("{}/config.json: not a JSON object", dir);
  std::string name = c.j.value("model_type", "");
  if (c.j.contains("architectures") && c.j["architectures"].is_array() && !c.j["architectures"].empty()) {
    name = c.j["architectures"][0].get<std::string>();
  }
  c.arch = model::find_arch_by_hf(name);
  if (!c.arch) {
    return make_error("{}/config.json: architecture '{}' is not supported ({})", dir, name,
                      model::arch_names(/*with_hf_only=*/true));
  }
  auto need = [&](const char* key, int64_t& out) -> core::Status {
    if (!c.j.contains(key) || !c.j[key].is_number_integer() || c.j[key].get<int64_t>() <= 0) {
      return make_error("{}/config.json: '{}' missing or not a positive integer", dir, key);
    }
    out = c.j[key].get<int64_t>();
    return {};
  };
  OWL_TRY(need("hidden_size", c.n_embd));
  OWL_TRY(need("num_hidden_layers", c.n_layer));
  OWL_TRY(need("num_attention_heads", c.n_head));
  OWL_TRY(need("intermediate_size", c.n_ff));
  c.n_head_kv = c.j.value("num_key_value_heads", c.n_head);
  c.head_dim = c.j.contains("head_dim") && c.j["head_dim"].is_number_integer() ? c.j["head_dim"].get<int64_t>()
                                                                               : c.n_embd / c.n_head;
  c.n_ctx = c.j.value("max_position_embeddings", int64_t{2048});
  if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0 || c.head_dim <= 0 || c.head_dim % 2 != 0) {
    return make_error("{}/config.json: heads {} / kv heads {} / head_dim {} are inconsistent", dir, c.n_head,
                      c.n_head_kv, c.head_dim);
  }
  return c;
}

void set_hparams(const HfConfig& c, gguf::GgufWriter& w) {
  const std::string a(c.arch->name);
  const json& j = c.j;
  auto u32 = [](int64_t v) { return gguf::Value::u32(static_cast<uint32_t>(v)); };
  w.set(keys::arch_key(a, keys::kContextLength), u32(c.n_ctx));
  w.set(keys::arch_key(a, keys::kEmbeddingLength), u32(c.n_embd));
  w.set(keys::arch_key(a, keys::kBlockCount), u32(c.n_layer));
  w.set(keys::arch_key(a, keys::kFeedForwardLength), u32(c.n_ff));
  w.set(keys::arch_key(a, keys::kHeadCount), u32(c.n_head));
  w.set(keys::arch_key(a, keys::kHeadCountKv), u32(c.n_head_kv));
  w.set(keys::arch_key(a, keys::kLayerNormRmsEpsilon), gguf::Value::f32(j.value("rms_norm_eps", 1e-5f)));
  w.set(keys::arch_key(a, keys::kRopeDimensionCount), u32(c.head_dim));
  w.set(keys::arch_key(a, keys::kRopeFreqBase), gguf::Value::f32(j.value("rope_theta", 10000.0f)));
  if (c.head_dim != c.n_embd / c.n_head || j.contains("head_dim")) {
    w.set(keys::arch_key(a, keys::kKeyLength), u32(c.head_dim));
    w.set(keys::arch_key(a, keys::kValueLength), u32(c.head_dim));
  }
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const json& r = j["rope_scaling"];
    const std::string type = r.value("rope_type", r.value("type", ""));
    if (type == "linear") {
      w.set(keys::arch_key(a, keys::kRopeScalingType), gguf::Value::string("linear"));
      w.set(keys::arch_key(a, keys::kRopeScalingFactor), gguf::Value::f32(r.value("factor", 1.0f)));
    }
  }
  if (c.arch->hf_window_softcap) {
    if (j.contains("sliding_window") && j["sliding_window"].is_number_integer()) {
      w.set(keys::arch_key(a, keys::kSlidingWindow), u32(j["sliding_window"].get<int64_t>()));
    }
    // config.json names these as GGUF does.
    for (const char* key : {keys::kAttnLogitSoftcapping, keys::kFinalLogitSoftcapping}) {
      if (j.contains(key) && j[key].is_number()) w.set(keys::arch_key(a, key), gguf::Value::f32(j[key].get<float>()));
    }
  }
}

// Llama 3 RoPE frequency factors (convert_hf_to_gguf.py, LlamaModel): 1 for short wavelengths,
// `factor` for long ones, a smooth blend between.
std::vector<float> llama3_rope_factors(const HfConfig& c) {
  const json& r = c.j["rope_scaling"];
  const double base = c.j.value("rope_theta", 10000.0);
  const double factor = r.value("factor", 8.0), low = r.value("low_freq_factor", 1.0), high = r.value("high_freq_factor", 4.0);
  const double old_ctx = r.value("original_max_position_embeddings", 8192.0);
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const double freq = 1.0 / std::pow(base, static_cast<double>(i) / static_cast<double>(c.head_dim));
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < old_ctx / high) {
      out.push_back(1.0f);
    } else if (wavelen > old_ctx / low) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

core::Result<std::vector<std::string>> shard_files(const std::string& dir) {
  const std::string index = dir + "/model.safetensors.index.json";
  std::vector<std::string> files;
  if (std::filesystem::exists(index)) {
    auto text = core::read_file(index);
    if (!text) return text.error();
    json j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      return make_error("{}: no weight_map object", index);
    }
    std::set<std::string> unique;
    for (const auto& v : j["weight_map"]) {
      if (!v.is_string()) return make_error("{}: weight_map values must be file names", index);
      unique.insert(v.get<std::string>());
    }
    for (const std::string& f : unique) {
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos) {
        return make_error("{}: shard name '{}' must be a file in the directory", index, f);
      }
      if (!std::filesystem::exists(dir + "/" + f)) return make_error("{}: shard {} is missing", index, f);
      files.push_back(dir + "/" + f);
    }
  } else if (std::filesystem::exists(dir + "/model.safetensors")) {
    files.push_back(dir + "/model.safetensors");
  }
  if (files.empty()) return make_error("{}: no model.safetensors or model.safetensors.index.json", dir);
  return files;
}

// One tensor on its way into the GGUF file; `bytes` holds converted data, else `data` borrows
// the safetensors map.
struct OutTensor {
  std::string name;
  gguf::TensorType type;
  std::vector<int64_t> ne;
  std::span<const uint8_t> data;
  std::vector<uint8_t> bytes;
};

std::vector<float> to_f32(const SafeTensor& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const uint8_t* p = t.data.data();
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == "F32") {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else if (t.dtype == "F64") {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      out[i] = static_cast<float>(d);
    } else {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = t.dtype == "F16" ? quant::f16_to_f32(h) : quant::bf16_to_f32(h);
    }
  }
  return out;
}

// HF's rotate-half order within each head [h][2][d/2] -> GGUF's interleaved [h][d/2][2] (rows).
std::vector<uint8_t> permute_rows(std::span<const uint8_t> data, int64_t n_rows, int64_t row_bytes, int64_t n_heads) {
  std::vector<uint8_t> out(data.size());
  const int64_t d = n_rows / n_heads;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < d / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        std::memcpy(out.data() + (h * d + 2 * i + j) * row_bytes, data.data() + (h * d + j * (d / 2) + i) * row_bytes,
                    static_cast<size_t>(row_bytes));
      }
    }
  }
  return out;
}

core::Result<OutTensor> convert_tensor(const HfConfig& c, const std::string& gguf_name, const SafeTensor& t) {
  if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16" && t.dtype != "F64") {
    return make_error("import: tensor {}: dtype {} is not supported (F32, F16, BF16, F64)", t.name, t.dtype);
  }
  if (t.shape.empty() || t.shape.size() > 2) return make_error("import: tensor {}: {} dimensions", t.name, t.shape.size());
  OutTensor o{gguf_name, gguf::TensorType::F32, {}, t.data, {}};
  for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) o.ne.push_back(*it);
  const bool vector = t.shape.size() == 1;
  const bool norm = gguf_name.find("norm.weight") != std::string::npos;
  if (vector || t.dtype == "F64" || (norm && c.arch->hf_norm_plus_one)) {
    std::vector<float> f = to_f32(t);
    if (norm && c.arch->hf_norm_plus_one) {
      for (float& v : f) v += 1.0f;
    }
    o.bytes.resize(f.size() * 4);
    std::memcpy(o.bytes.data(), f.data(), o.bytes.size());
  } else {
    o.type = t.dtype == "F32" ? gguf::TensorType::F32 : t.dtype == "F16" ? gguf::TensorType::F16 : gguf::TensorType::BF16;
  }
  const bool is_q = gguf_name.find("attn_q.weight") != std::string::npos;
  const bool is_k = gguf_name.find("attn_k.weight") != std::string::npos;
  if (c.arch->hf_permute_qk && (is_q || is_k)) {
    const int64_t heads = is_q ? c.n_head : c.n_head_kv;
    const int64_t n_rows = t.shape[0];
    if (n_rows % heads != 0 || (n_rows / heads) % 2 != 0) {
      return make_error("import: tensor {}: {} rows do not split into {} heads", t.name, n_rows, heads);
    }
    std::span<const uint8_t> src = o.bytes.empty() ? o.data : std::span<const uint8_t>(o.bytes);
    o.bytes = permute_rows(src, n_rows, static_cast<int64_t>(src.size()) / n_rows, heads);
  }
  if (!o.bytes.empty()) o.data = o.bytes;
  return o;
}

// Dimension `dim` of 2-D tensor `name` (0: columns, its input; 1: rows, its output), or -1 when
// there is no such tensor (e.g. attn_q in a fused attn_qkv).
int64_t dim_of(const std::vector<OutTensor>& tensors, const std::string& name, int dim) {
  for (const OutTensor& t : tensors) {
    if (t.name == name && t.ne.size() == 2) return t.ne[static_cast<size_t>(dim)];
  }
  return -1;
}

// config.json against the tensors' shapes, so that a wrong key fails here and not at load time
// (or, with fewer layers than the files hold, never).
core::Status check_config(const HfConfig& c, const std::string& dir, const std::vector<OutTensor>& tensors) {
  int64_t n_blocks = 0;
  for (const OutTensor& t : tensors) {
    if (t.name.rfind("blk.", 0) == 0) n_blocks = std::max<int64_t>(n_blocks, std::stoll(t.name.substr(4)) + 1);
    if (t.name == "token_embd.weight" && t.ne.size() == 2 && t.ne[0] != c.n_embd) {
      return make_error("{}/config.json: hidden_size {} but token_embd.weight has {} columns", dir, c.n_embd, t.ne[0]);
    }
  }
  if (n_blocks != c.n_layer) {
    return make_error("{}/config.json: num_hidden_layers {} but the tensors hold {} layers (blk.0 to blk.{}){}", dir,
                      c.n_layer, n_blocks, n_blocks - 1, n_blocks > c.n_layer ? ": extra tensors beyond the config" : "");
  }
  const struct {
    const char* key;
    int64_t value;     // the config's
    const char* tensor;
    int dim;           // 0: columns, 1: rows
    int64_t expected;  // the tensor's size along dim that the value implies
  } shapes[] = {
      {"num_attention_heads", c.n_head, "blk.0.attn_q.weight", 1, c.n_head * c.head_dim},
      {"num_key_value_heads", c.n_head_kv, "blk.0.attn_k.weight", 1, c.n_head_kv * c.head_dim},
      {"intermediate_size", c.n_ff, "blk.0.ffn_down.weight", 0, c.n_ff},
  };
  for (const auto& s : shapes) {
    const int64_t n = dim_of(tensors, s.tensor, s.dim);
    if (n >= 0 && n != s.expected) {
      const char* unit = s.dim == 0 ? "columns" : "rows";
      const std::string how = s.dim == 0 ? "" : fmt::format(" (x head_dim {})", c.head_dim);
      return make_error("{}/config.json: {} {} implies {} {}{} but {} has {}", dir, s.key, s.value, s.expected, unit, how,
                        s.tensor, n);
    }
  }
  return {};
}

}  // namespace

namespace detail {

core::Status write_as_type(const gguf::GgufWriter& w, const std::string& output, const std::string& type, int n_threads) {
  if (type.empty()) return w.write(output);
  const gguf::FileTypeInfo* preset = gguf::find_file_type(type);
  if (!preset) return make_error("import: unknown --type '{}'", type);
  const std::string temp = output + ".import-f32.tmp";
  OWL_TRY(w.write(temp));
  auto q = quantize::quantize_model({.input = temp, .output = output, .preset = *preset, .n_threads = n_threads});
  std::filesystem::remove(temp);
  if (!q) return q.error();
  return {};
}

}  // namespace detail

core::Result<ImportSummary> import_hf(const ImportOptions& options) try {
  const std::string& dir = options.hf_dir;
  if (!options.type.empty() && !gguf::find_file_type(options.type)) return make_error("import: unknown --type '{}'", options.type);
  auto config = read_config(dir);
  if (!config) return config.error();
  auto files = shard_files(dir);
  if (!files) return files.error();
  std::vector<SafetensorsFile> shards;
  std::vector<OutTensor> tensors;
  for (const std::string& f : *files) {
    auto s = SafetensorsFile::open(f);
    if (!s) return s.error();
    shards.push_back(std::move(*s));
    for (const SafeTensor& t : shards.back().header().tensors) {
      if (t.name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // recomputed from rope_theta
      auto name = detail::hf_to_gguf_name(*config->arch, t.name);
      if (!name) return make_error("import: {}: tensor '{}' has no GGUF name for {}", f, t.name, config->arch->name);
      auto o = convert_tensor(*config, *name, t);
      if (!o) return o.error();
      tensors.push_back(std::move(*o));
    }
  }
  OWL_TRY(check_config(*config, dir, tensors));
  gguf::GgufWriter w;
  const std::string arch(config->arch->name);
  w.set(keys::kGeneralArchitecture, gguf::Value::string(arch));
  std::string name = config->j.value("_name_or_path", "");
  if (name.empty()) name = std::filesystem::path(dir).filename().string();
  w.set(keys::kGeneralName, gguf::Value::string(name));
  set_hparams(*config, w);
  std::vector<float> rope_freqs;
  if (config->j.contains("owl_rope_freqs") && config->j["owl_rope_freqs"].is_array()) {
    rope_freqs = config->j["owl_rope_freqs"].get<std::vector<float>>();
  } else if (config->j.contains("rope_scaling") && config->j["rope_scaling"].is_object() &&
             config->j["rope_scaling"].value("rope_type", "") == "llama3") {
    rope_freqs = llama3_rope_factors(*config);
  }
  detail::HfTokenizerInfo tok_info;
  auto tok = detail::read_hf_tokenizer(dir, config->j.value("bos_token_id", int64_t{-1}),
                                       config->j.value("eos_token_id", int64_t{-1}), &tok_info);
  if (!tok) return tok.error();
  for (gguf::MetadataEntry& e : *tok) w.set(std::move(e.key), std::move(e.value));
  ImportSummary summary{arch, 0, 0, tok_info.model, tok_info.pre, tok_info.chat_template};
  for (const OutTensor& t : tensors) {
    OWL_TRY(w.add_tensor(t.name, t.type, t.ne, t.data));
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    summary.n_params += n;
  }
  if (!rope_freqs.empty()) {
    const int64_t ne[1] = {static_cast<int64_t>(rope_freqs.size())};
    OWL_TRY(w.add_tensor("rope_freqs.weight", gguf::TensorType::F32, ne,
                         {reinterpret_cast<const uint8_t*>(rope_freqs.data()), rope_freqs.size() * 4}));
  }
  summary.n_tensors = static_cast<int64_t>(tensors.size() + (rope_freqs.empty() ? 0 : 1));
  if (options.type.empty()) {
    gguf::FileType file_type = gguf::FileType::F32;  // unless every matrix is F16 or BF16
    for (gguf::TensorType t : {gguf::TensorType::F16, gguf::TensorType::BF16}) {
      if (std::all_of(tensors.begin(), tensors.end(), [&](const OutTensor& o) { return o.ne.size() < 2 || o.type == t; })) {
        file_type = gguf::file_type_of_weights(t);
      }
    }
    w.set(keys::kGeneralFileType, gguf::Value::u32(static_cast<uint32_t>(file_type)));
    OWL_TRY(w.write(options.output));
    return summary;
  }
  OWL_TRY(detail::write_as_type(w, options.output, options.type, options.n_threads));
  return summary;
} catch (const json::exception& e) {
  return make_error("import: {}: unexpected JSON structure: {}", options.hf_dir, e.what());
}

}  // namespace owl::convert
