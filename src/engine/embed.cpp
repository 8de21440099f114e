#include "engine/embed.h"

#include <algorithm>
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
  // The context make_context picks for 0: the model's training length, at most 4096.
  const int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : std::min<int64_t>(model.config.n_ctx_train, 4096);
  const int n_seq = static_cast<int>(std::clamp<int64_t>(std::max<int64_t>(n_ctx, 8192) / std::max<int64_t>(n_ctx, 1), 1, 16));
  auto ctx = model::make_context(model, {.n_ctx = n_ctx, .n_seq = n_seq, .n_threads = options.n_threads});
  if (!ctx) return ctx.error();
  return std::unique_ptr<Embedder>(new Embedder(model, options, std::move(*ctx)));
}

core::Result<std::vector<float>> Embedder::embed(std::span<const int32_t> tokens) {
  std::vector<std::vector<int32_t>> one{std::vector<int32_t>(tokens.begin(), tokens.end())};
  auto out = embed(std::span<const std::vector<int32_t>>(one));
  if (!out) return out.error();
  return std::move((*out)[0]);
}

core::Result<std::vector<std::vector<float>>> Embedder::embed(std::span<const std::vector<int32_t>> inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto n = static_cast<int64_t>(inputs[i].size());
    if (n == 0) return core::make_error("embed: input {} has no tokens", i);
    if (n > ctx_->kv.n_ctx()) return core::make_error("embed: input {} has {} tokens, more than the context of {}", i, n, ctx_->kv.n_ctx());
  }
  if (inputs.empty()) return std::vector<std::vector<float>>{};
  Call call{.inputs = inputs, .out = std::vector<std::vector<float>>(inputs.size()), .left = inputs.size()};
  std::unique_lock<std::mutex> lock(mutex_);
  queue_.push_back(&call);
  while (!call.done) {
    if (!running_) {
      drain(lock);
    } else {
      done_.wait(lock);
    }
  }
  if (!call.status.ok()) return call.status.error();
  return std::move(call.out);
}

int64_t Embedder::passes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return passes_;
}

void Embedder::drain(std::unique_lock<std::mutex>& lock) {
  running_ = true;
  const auto capacity = static_cast<size_t>(ctx_->kv.n_seq());
  std::vector<Call*> owners;
  std::vector<std::span<const int32_t>> inputs;
  std::vector<std::vector<float>*> out;
  while (!queue_.empty()) {
    // The next batch: inputs from the front of the queue, in order, up to the context's sequences.
    owners.clear();
    inputs.clear();
    out.clear();
    while (!queue_.empty() && inputs.size() < capacity) {
      Call* call = queue_.front();
      while (call->next < call->inputs.size() && inputs.size() < capacity) {
        owners.push_back(call);
        inputs.emplace_back(call->inputs[call->next]);
        out.push_back(&call->out[call->next]);
        ++call->next;
      }
      if (call->next == call->inputs.size()) queue_.pop_front();
    }
    ++passes_;
    lock.unlock();
    core::Status status = embed_batch(inputs, out);
    lock.lock();
    for (Call* call : owners) {
      if (call->done) continue;
      if (!status.ok()) {
        call->status = status;
        call->done = true;
        std::erase(queue_, call);  // its inputs not yet taken are not computed
        continue;
      }
      if (--call->left == 0) call->done = true;
    }
    done_.notify_all();
  }
  running_ = false;
  done_.notify_all();
}

core::Status Embedder::embed_batch(std::span<const std::span<const int32_t>> inputs, std::span<std::vector<float>* const> out) {
  ctx_->kv.clear();
  // Rows whose hidden state the pooling reads: every one, the last or the first.
  batch_.clear();
  std::vector<int64_t> rows_of(inputs.size(), 0);
  for (size_t s = 0; s < inputs.size(); ++s) {
    const auto n = static_cast<int64_t>(inputs[s].size());
    for (int64_t i = 0; i < n; ++i) {
      const bool want = options_.pooling == Pooling::kMean || (options_.pooling == Pooling::kLast && i == n - 1) ||
                        (options_.pooling == Pooling::kCls && i == 0);
      batch_.add(inputs[s][static_cast<size_t>(i)], static_cast<int32_t>(i), static_cast<int32_t>(s), want);
      rows_of[s] += want ? 1 : 0;
    }
  }
  const int64_t d = n_embd();
  hidden_.resize(static_cast<size_t>(batch_.n_logits() * d));
  OWL_TRY(model::forward(model_, batch_, *ctx_, hidden_.data(), model::Output::kHidden));
  int64_t row = 0;
  for (size_t s = 0; s < inputs.size(); ++s) {
    std::vector<double> sum(static_cast<size_t>(d), 0.0);
    const int64_t rows = rows_of[s];
    for (int64_t r = 0; r < rows; ++r, ++row) {
      for (int64_t i = 0; i < d; ++i) sum[static_cast<size_t>(i)] += hidden_[static_cast<size_t>(row * d + i)];
    }
    double norm = 0.0;
    for (double& v : sum) {
      v /= static_cast<double>(rows);
      norm += v * v;
    }
    norm = options_.normalize && norm > 0.0 ? std::sqrt(norm) : 1.0;
    std::vector<float>& vec = *out[s];
    vec.resize(static_cast<size_t>(d));
    for (int64_t i = 0; i < d; ++i) vec[static_cast<size_t>(i)] = static_cast<float>(sum[static_cast<size_t>(i)] / norm);
  }
  return {};
}

}  // namespace owl::engine
