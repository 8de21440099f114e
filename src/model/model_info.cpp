#include "model/model_info.h"

#include "gguf/keys.h"

namespace owl::model {

namespace keys = gguf::keys;

namespace {

std::string string_or_empty(const gguf::GgufFile& file, const std::string& key) {
  const gguf::Value* v = file.find(key);
  const std::string* s = v ? v->as_string() : nullptr;
  return s ? *s : std::string();
}

std::optional<int64_t> int_or_none(const gguf::GgufFile& file, const std::string& key) {
  const gguf::Value* v = file.find(key);
  return v ? v->as_int() : std::nullopt;
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
  const std::string& arch = info.architecture;
  info.context_length = int_or_none(file, keys::arch_key(arch, keys::kContextLength));
  info.n_embd = int_or_none(file, keys::arch_key(arch, keys::kEmbeddingLength));
  info.n_layer = int_or_none(file, keys::arch_key(arch, keys::kBlockCount));
  info.n_head = int_or_none(file, keys::arch_key(arch, keys::kHeadCount));
  info.n_head_kv = int_or_none(file, keys::arch_key(arch, keys::kHeadCountKv));
  info.n_ff = int_or_none(file, keys::arch_key(arch, keys::kFeedForwardLength));
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
  if (info.n_layer && info.n_head && info.n_embd) {
    const int64_t head_dim =
        int_or_none(file, keys::arch_key(arch, keys::kKeyLength)).value_or(*info.n_embd / *info.n_head);
    info.kv_bytes_per_token = 2 * *info.n_layer * info.n_head_kv.value_or(*info.n_head) * head_dim * 2;
  }
  return info;
}

MemoryEstimate estimate_memory(const ModelInfo& info, int64_t n_ctx) {
  MemoryEstimate m;
  m.n_ctx = n_ctx;
  m.weights = info.tensor_bytes;
  m.kv_cache = static_cast<uint64_t>(info.kv_bytes_per_token * n_ctx);
  // forward() keeps about 4 n_embd + 2 n_ff floats per batch token, plus the logits of one row.
  const int64_t per_token = 4 * info.n_embd.value_or(0) + 2 * info.n_ff.value_or(0);
  m.activations = static_cast<uint64_t>((512 * per_token + info.vocab_size) * 4);
  return m;
}

}  // namespace owl::model
