#include "engine/decode.h"

#include <algorithm>

namespace owl::engine {

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

SequenceDecoder::SequenceDecoder(const tokenizer::Tokenizer& tokenizer, const GenerateParams& params, int64_t n_vocab,
                                 std::span<const int32_t> prompt)
    : tokenizer_(tokenizer),
      max_tokens_(params.max_tokens),
      ignore_eos_(params.ignore_eos),
      sampler_(params.sampling, n_vocab, params.constraint ? params.constraint() : nullptr),
      detok_(tokenizer),
      stop_(params.stop) {
  sampler_.accept_prompt(prompt);
}

SequenceDecoder::Output SequenceDecoder::next(const float* logits, int64_t n_held, int64_t n_ctx) {
  Output out;
  out.sampled = sampler_.sample(logits);
  sampler_.accept(out.sampled.token);
  ++n_generated_;
  out.eog = !ignore_eos_ && tokenizer_.is_eog(out.sampled.token);
  if (!out.eog) out.text = stop_.push(detok_.push(out.sampled.token));
  const bool stopped = out.eog || stop_.stopped();
  const bool length = (max_tokens_ >= 0 && n_generated_ >= max_tokens_) || n_held >= n_ctx;
  if (stopped || length) {
    out.text += stop_.push(detok_.finish()) + stop_.flush();
    out.finish = stopped ? FinishReason::kStop : FinishReason::kLength;
  }
  return out;
}

}  // namespace owl::engine
