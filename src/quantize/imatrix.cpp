// Importance matrices: collection over forward() through Context::observer, and llama.cpp's
// GGUF imatrix file format.
#include "quantize/imatrix.h"

#include <cmath>
#include <unordered_map>

#include "gguf/gguf.h"
#include "gguf/keys.h"
#include "tokenizer/tokenizer.h"

namespace owl::quantize {

namespace keys = gguf::keys;

using core::make_error;

std::vector<float> Imatrix::importance(const std::string& tensor, int64_t n_in) const {
  auto it = entries.find(tensor);
  if (it == entries.end() || static_cast<int64_t>(it->second.sum_sq.size()) != n_in) return {};
  std::vector<float> out(static_cast<size_t>(n_in), 1.0f);  // never seen input: uniform
  if (it->second.count <= 0) return out;
  for (int64_t i = 0; i < n_in; ++i) {
    out[i] = static_cast<float>(it->second.sum_sq[i] / static_cast<double>(it->second.count));
  }
  return out;
}

core::Status save_imatrix(const Imatrix& imatrix, const std::string& path) {
  gguf::GgufWriter writer;
  writer.set(keys::kGeneralType, gguf::Value::string("imatrix"));
  gguf::Array datasets{gguf::ValueType::STRING, {}};
  for (const std::string& d : imatrix.datasets) datasets.items.push_back(gguf::Value::string(d));
  writer.set(keys::kImatrixDatasets, gguf::Value::array(std::move(datasets)));
  writer.set(keys::kImatrixChunkCount, gguf::Value::u32(static_cast<uint32_t>(imatrix.chunk_count)));
  writer.set(keys::kImatrixChunkSize, gguf::Value::u32(static_cast<uint32_t>(imatrix.chunk_size)));
  // The writer borrows tensor data: keep the f32 copies alive until write().
  std::vector<std::vector<float>> sums, counts;
  sums.reserve(imatrix.entries.size());
  counts.reserve(imatrix.entries.size());
  for (const auto& [name, entry] : imatrix.entries) {
    sums.emplace_back(entry.sum_sq.begin(), entry.sum_sq.end());
    counts.push_back({static_cast<float>(entry.count)});
    const int64_t sum_shape[2] = {static_cast<int64_t>(entry.sum_sq.size()), 1};
    const int64_t count_shape[2] = {1, 1};
    auto bytes = [](const std::vector<float>& v) {
      return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float));
    };
    OWL_TRY(writer.add_tensor(name + ".in_sum2", gguf::TensorType::F32, sum_shape, bytes(sums.back())));
    OWL_TRY(writer.add_tensor(name + ".counts", gguf::TensorType::F32, count_shape, bytes(counts.back())));
  }
  return writer.write(path);
}

core::Result<Imatrix> load_imatrix(const std::string& path) {
  auto file = gguf::GgufFile::open(path);
  if (!file) return file.error();
  auto type = file->get_string_or(keys::kGeneralType, "");
  if (!type || *type != "imatrix") return make_error("imatrix {}: {} is not 'imatrix'", path, keys::kGeneralType);
  Imatrix m;
  if (auto d = file->get_string_array(keys::kImatrixDatasets)) m.datasets = *d;
  auto chunk_count = file->get_int_or(keys::kImatrixChunkCount, 0);
  auto chunk_size = file->get_int_or(keys::kImatrixChunkSize, 0);
  m.chunk_count = chunk_count.ok() ? *chunk_count : 0;
  m.chunk_size = chunk_size.ok() ? *chunk_size : 0;
  constexpr std::string_view kSuffix = ".in_sum2";
  for (const gguf::TensorInfo& t : file->tensors()) {
    const std::string_view name = t.name;
    if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) continue;
    const std::string base(name.substr(0, name.size() - kSuffix.size()));
    const gguf::TensorInfo* c = file->find_tensor(base + ".counts");
    if (!c) return make_error("imatrix {}: {} has no {}.counts", path, t.name, base);
    if (t.type != gguf::TensorType::F32 || c->type != gguf::TensorType::F32) {
      return make_error("imatrix {}: {} and its counts must be F32", path, t.name);
    }
    // Several matrices (MoE experts) per entry are summed into one: owl runs dense models.
    if (c->n_elements() != t.ne[1] * t.ne[2] * t.ne[3]) {
      return make_error("imatrix {}: {}.counts has {} values for {} matrices", path, base, c->n_elements(), t.n_rows());
    }
    ImatrixEntry e;
    e.sum_sq.assign(static_cast<size_t>(t.ne[0]), 0.0);
    const auto* s = reinterpret_cast<const float*>(t.data);
    const auto* n = reinterpret_cast<const float*>(c->data);
    for (int64_t r = 0; r < t.n_rows(); ++r) {
      for (int64_t i = 0; i < t.ne[0]; ++i) e.sum_sq[i] += s[r * t.ne[0] + i];
      e.count += static_cast<int64_t>(n[r]);
    }
    for (double v : e.sum_sq) {
      if (!std::isfinite(v)) return make_error("imatrix {}: {} holds a non-finite value", path, t.name);
    }
    m.entries.emplace(base, std::move(e));
  }
  return m;
}

namespace {

// Sums x^2 per input column of every weight matrix except the output (as llama-imatrix does
// without --process-output). forward() calls it on one thread, so no locking.
class Collector final : public model::ActivationObserver {
 public:
  Collector(const model::Model& model, Imatrix& out) : model_(model), out_(out) {
    for (const gguf::TensorInfo& t : model.file.tensors()) names_.emplace(t.data, t.name);
  }
  void observe(const model::Weight& w, const float* x, int64_t x_stride, int64_t n_rows) const override {
    if (&w == &model_.weights.output) return;
    auto name = names_.find(w.data);
    if (name == names_.end()) return;
    ImatrixEntry& e = out_.entries[name->second];
    if (e.sum_sq.empty()) e.sum_sq.assign(static_cast<size_t>(w.n_in), 0.0);
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* row = x + r * x_stride;
      for (int64_t i = 0; i < w.n_in; ++i) e.sum_sq[i] += static_cast<double>(row[i]) * row[i];
    }
    e.count += n_rows;
  }

 private:
  const model::Model& model_;
  Imatrix& out_;
  std::unordered_map<const void*, std::string> names_;
};

// -log softmax(logits)[target], in double.
double nll(const float* logits, int64_t n_vocab, int32_t target) {
  float max = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  return std::log(sum) - static_cast<double>(logits[target] - max);
}

}  // namespace

core::Result<ImatrixResult> compute_imatrix(const ImatrixOptions& o) {
  auto model = model::load_model(o.model);
  if (!model) return model.error();
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return tok.error();
  const std::vector<tokenizer::TokenId> tokens = tok->tokenize(o.text, {.add_special = false});
  const int64_t n_ctx = o.n_ctx;
  if (n_ctx < 2) return make_error("imatrix: context {} is too small", n_ctx);
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
  if (o.max_chunks > 0) n_chunks = std::min(n_chunks, o.max_chunks);
  if (n_chunks == 0) {
    return make_error("imatrix: the text has {} tokens, fewer than one chunk of {} (use a longer text or --ctx)",
                      tokens.size(), n_ctx);
  }
  auto ctx = model::make_context(**model, {.n_ctx = n_ctx, .n_seq = 1, .n_batch = n_ctx, .n_threads = o.n_threads});
  if (!ctx) return ctx.error();
  ImatrixResult result;
  Collector collector(**model, result.imatrix);
  (*ctx)->observer = &collector;
  const int64_t n_vocab = (*model)->config.n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_ctx * n_vocab));
  double nll_sum = 0;
  int64_t nll_count = 0;
  model::Batch batch;
  for (int64_t c = 0; c < n_chunks; ++c) {
    batch.clear();
    for (int64_t i = 0; i < n_ctx; ++i) {
      tokenizer::TokenId t = tokens[c * n_ctx + i];
      if (i == 0 && tok->bos() != tokenizer::kNoToken) t = tok->bos();  // each chunk starts as a document
      batch.add(t, static_cast<int32_t>(i), 0, true);
    }
    OWL_TRY(model::forward(**model, batch, **ctx, logits.data()));
    for (int64_t i = n_ctx / 2; i + 1 < n_ctx; ++i) {
      nll_sum += nll(logits.data() + i * n_vocab, n_vocab, tokens[c * n_ctx + i + 1]);
      ++nll_count;
    }
    if (o.on_progress) o.on_progress(c + 1, n_chunks);
  }
  (*ctx)->observer = nullptr;
  result.imatrix.datasets = {o.dataset_name};
  result.imatrix.chunk_count = n_chunks;
  result.imatrix.chunk_size = n_ctx;
  result.n_tokens = n_chunks * n_ctx;
  result.perplexity = nll_count > 0 ? std::exp(nll_sum / static_cast<double>(nll_count)) : 0.0;
  return result;
}

}  // namespace owl::quantize
