#include "engine/embed.h"

#include <cmath>

#include "gguf/keys.h"

namespace owl::engine {

core::Result<Pooling> parse_pooling(std::string_view name) {
  if (name == "mean") return Pooling::kMean;
  if (name == "last") return Pooling::kLast;
  if (name == "cls") return Pooling::kCls;
  return core::make_error("pooling '{}' is not one of: mean, last, cls", name);
}

const char* pooling_name(Pooling pooling) {
  switch (pooling) {
    case Pooling::kMean: return "mean";
    case Pooling::kLast: return "last";
    case Pooling::kCls: return "cls";
  }
  return "mean";
}

Pooling model_pooling(const model::Model& model) {
  const gguf::Value* arch = model.file.find(gguf::keys::kGeneralArchitecture);
  if (arch == nullptr || arch->as_string() == nullptr) return Pooling::kMean;
  auto type = model.file.get_int_or(gguf::keys::arch_key(*arch->as_string(), gguf::keys::kPoolingType), 1);
  if (!type) return Pooling::kMean;
  if (*type == 2) return Pooling::kCls;
  if (*type == 3) return Pooling::kLast;
  return Pooling::kMean;
}

core::Result<std::unique_ptr<Embedder>> Embedder::make(const model::Model& model, const EmbedderOptions& options) {
  auto ctx = model::make_context(model, {.n_ctx = options.n_ctx, .n_seq = 1, .n_threads = options.n_threads});
  if (!ctx) return ctx.error();
  return std::unique_ptr<Embedder>(new Embedder(model, options, std::move(*ctx)));
}

core::Result<std::vector<float>> Embedder::embed(std::span<const int32_t> tokens) {
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0) return core::make_error("embed: the input has no tokens");
  std::lock_guard<std::mutex> lock(mutex_);
  if (n > ctx_->kv.n_ctx()) {
    return core::make_error("embed: the input has {} tokens, more than the context of {}", n, ctx_->kv.n_ctx());
  }
  // Rows whose hidden state the pooling reads: every one, the last or the first.
  batch_.clear();
  for (int64_t i = 0; i < n; ++i) {
    const bool want = options_.pooling == Pooling::kMean || (options_.pooling == Pooling::kLast && i == n - 1) ||
                      (options_.pooling == Pooling::kCls && i == 0);
    batch_.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(i), 0, want);
  }
  const int64_t d = n_embd();
  hidden_.resize(static_cast<size_t>(batch_.n_logits() * d));
  if (auto s = model::forward(model_, batch_, *ctx_, hidden_.data(), model::Output::kHidden); !s) return s.error();
  std::vector<double> sum(static_cast<size_t>(d), 0.0);
  const int64_t rows = batch_.n_logits();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < d; ++i) sum[static_cast<size_t>(i)] += hidden_[static_cast<size_t>(r * d + i)];
  }
  double norm = 0.0;
  for (double& v : sum) {
    v /= static_cast<double>(rows);
    norm += v * v;
  }
  norm = options_.normalize && norm > 0.0 ? std::sqrt(norm) : 1.0;
  std::vector<float> out(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) out[static_cast<size_t>(i)] = static_cast<float>(sum[static_cast<size_t>(i)] / norm);
  return out;
}

}  // namespace owl::engine
