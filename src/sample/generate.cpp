#include "sample/generate.h"

#include <algorithm>
#include <chrono>

namespace owl::sample {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);
  size_t first = std::string::npos;
  for (const std::string& s : stop_) {
    if (!s.empty()) first = std::min(first, held_.find(s));
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Keep the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stop_) {
    for (size_t n = std::min(s.size() - (s.empty() ? 0 : 1), held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(held_);
  return stopped_ ? std::string() : out;
}

core::Result<GenerateStats> generate(const model::Model& model, model::Context& ctx,
                                     const tokenizer::Tokenizer& tokenizer, SequenceState& state,
                                     const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                     const TokenCallback& on_token) {
  const int64_t n_ctx = ctx.kv.n_ctx();
  if (prompt.empty()) return core::make_error("generate: empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= n_ctx) {
    return core::make_error("generate: prompt of {} tokens does not fit the context of {} tokens", prompt.size(), n_ctx);
  }
  OWL_TRY(validate(options.sampling, model.config.n_vocab));
  GenerateStats stats;
  // Reuse the cached prefix, but recompute at least the last prompt token for its logits.
  size_t keep = 0;
  const size_t limit = std::min(state.tokens.size(), prompt.size() - 1);
  while (keep < limit && state.tokens[keep] == prompt[keep]) ++keep;
  ctx.kv.truncate(state.seq, static_cast<int64_t>(keep));
  state.tokens.resize(keep);
  stats.n_reused = static_cast<int64_t>(keep);
  stats.n_prompt = static_cast<int64_t>(prompt.size() - keep);

  const int64_t n_vocab = model.config.n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  model::Batch batch;
  for (size_t i = keep; i < prompt.size(); ++i) {
    batch.add(prompt[i], static_cast<int32_t>(i), state.seq, i + 1 == prompt.size());
  }
  auto start = Clock::now();
  OWL_TRY(model::forward(model, batch, ctx, logits.data()));
  stats.prompt_ms = ms_since(start);
  state.tokens.assign(prompt.begin(), prompt.end());

  Sampler sampler(options.sampling, n_vocab);
  for (int32_t t : prompt) sampler.accept(t);
  tokenizer::Detokenizer detok(tokenizer);
  StopMatcher stop(options.stop);
  const int64_t room = n_ctx - static_cast<int64_t>(prompt.size());
  const int64_t n_predict = options.n_predict < 0 ? room : std::min(options.n_predict, room);
  stats.finish = FinishReason::kLength;
  start = Clock::now();
  for (int64_t i = 0; i < n_predict; ++i) {
    const Sampled s = sampler.sample(logits.data());
    sampler.accept(s.token);
    ++stats.n_generated;
    const bool eog = !options.ignore_eos && tokenizer.is_eog(s.token);
    const bool last = i + 1 == n_predict;
    std::string text = eog ? std::string() : stop.push(detok.push(s.token));
    if (eog || last || stop.stopped()) text += stop.push(detok.finish()) + stop.flush();
    const bool go_on = on_token(text, s);
    if (eog || stop.stopped()) {
      stats.finish = FinishReason::kStop;
      break;
    }
    if (!go_on) {
      stats.finish = FinishReason::kCancelled;
      break;
    }
    if (last) break;
    batch.clear();
    batch.add(s.token, static_cast<int32_t>(state.tokens.size()), state.seq, true);
    OWL_TRY(model::forward(model, batch, ctx, logits.data()));
    state.tokens.push_back(s.token);
  }
  stats.generate_ms = ms_since(start);
  return stats;
}

}  // namespace owl::sample
