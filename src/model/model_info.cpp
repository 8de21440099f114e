#include "model/model_info.h"

#include "gguf/keys.h"
#include "model/forward.h"
#include "model/kv_cache.h"

namespace owl::model {

namespace keys = gguf::keys;

namespace {

std::string string_or_empty(const gguf::GgufFile& file, const std::string& key) {
  const gguf::Value* v = file.find(key);
  const std::string* s = v ? v->as_string() : nullptr;
  return s ? *s : std::string();
}

std::string tokenizer_kind(const std::string& model) {
  if (model == "llama") return "SentencePiece (llama)";
  if (model == "gpt2") return "byte-level BPE (gpt2)";
  if (model == "bert") return "WordPiece (bert)";
  if (model == "t5") return "Unigram (t5)";
  if (model == "rwkv") return "RWKV (rwkv)";
  if (model.empty() || model == "none") return "none";
  return model;
}

}  // namespace

ModelInfo describe_model(const gguf::GgufFile& file) {
  ModelInfo info;
  info.path = file.path();
  info.file_size = file.file_size();
  info.gguf_version = file.version();
  info.architecture = string_or_empty(file, keys::kGeneralArchitecture);
  info.name = string_or_empty(file, keys::kGeneralName);
  info.license = string_or_empty(file, keys::kGeneralLicense);
  if (auto config = load_config(file)) {
    info.config = std::move(*config);
  } else {
    info.config_error = config.message();
  }
  for (const gguf::TensorInfo& t : file.tensors()) {
    TypeUsage& usage = info.types[std::string(gguf::type_info(t.type).name)];
    usage.tensors += 1;
    usage.elements += t.n_elements();
    usage.bytes += t.n_bytes;
    info.n_params += t.n_elements();
    info.tensor_bytes += t.n_bytes;
  }
  info.n_tensors = static_cast<int64_t>(file.tensors().size());
  info.tokenizer_model = string_or_empty(file, keys::kTokenizerModel);
  info.tokenizer_kind = tokenizer_kind(info.tokenizer_model);
  info.tokenizer_pre = string_or_empty(file, keys::kTokenizerPre);
  if (const gguf::Value* tokens = file.find(keys::kTokenizerTokens)) {
    if (const gguf::Array* a = tokens->as_array()) info.vocab_size = static_cast<int64_t>(a->items.size());
  }
  info.has_chat_template = file.find(keys::kTokenizerChatTemplate) != nullptr;
  return info;
}

MemoryEstimate estimate_memory(const ModelInfo& info, int64_t n_ctx) {
  MemoryEstimate m;
  m.n_ctx = n_ctx;
  m.weights = info.tensor_bytes;
  int64_t per_token = 0;  // activation floats per batch token
  if (const std::optional<ModelConfig>& c = info.config) {
    m.kv_cache = KvCache::bytes_for(c->n_layer, c->n_embd_kv(), n_ctx, 1);
    per_token = c->activation_widths().total();
  }
  const int64_t n_batch = ContextOptions{}.n_batch;
  m.activations = static_cast<uint64_t>(n_batch * per_token + info.vocab_size) * sizeof(float);
  return m;
}

}  // namespace owl::model
