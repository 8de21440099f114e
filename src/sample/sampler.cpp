#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace owl::sample {

using core::make_error;

uint64_t choice_seed(uint64_t seed, int index) {
  if (index == 0) return seed;
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(index);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

core::Status validate_ranges(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f && p.temperature <= 2.0f)) return make_error("sampling: temperature {} outside [0, 2]", p.temperature);
  if (p.top_k < 0) return make_error("sampling: top_k {} must be >= 0 (0: off)", p.top_k);
  if (!(p.top_p >= 0.0f && p.top_p <= 1.0f)) return make_error("sampling: top_p {} outside [0, 1]", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return make_error("sampling: min_p {} outside [0, 1]", p.min_p);
  if (!(p.typical_p > 0.0f && p.typical_p <= 1.0f)) return make_error("sampling: typical_p {} outside (0, 1]", p.typical_p);
  if (!(p.repeat_penalty > 0.0f && p.repeat_penalty <= 10.0f)) {
    return make_error("sampling: repeat_penalty {} outside (0, 10]", p.repeat_penalty);
  }
  if (!(std::fabs(p.frequency_penalty) <= 2.0f)) return make_error("sampling: frequency_penalty {} outside [-2, 2]", p.frequency_penalty);
  if (!(std::fabs(p.presence_penalty) <= 2.0f)) return make_error("sampling: presence_penalty {} outside [-2, 2]", p.presence_penalty);
  if (p.repeat_last_n < -1) return make_error("sampling: repeat_last_n {} must be >= -1", p.repeat_last_n);
  if (p.n_probs < 0 || p.n_probs > 100) return make_error("sampling: n_probs {} outside 0..100", p.n_probs);
  return {};
}

core::Status validate(const SamplingParams& p, int64_t n_vocab) {
  OWL_TRY(validate_ranges(p));
  for (const auto& [token, bias] : p.logit_bias) {
    if (token < 0 || token >= n_vocab) return make_error("sampling: logit_bias token {} outside the vocabulary of {}", token, n_vocab);
    if (std::isnan(bias)) return make_error("sampling: logit_bias for token {} is NaN", token);
  }
  return {};
}

Sampler::Sampler(SamplingParams params, int64_t n_vocab, std::unique_ptr<Constraint> constraint)
    : params_(std::move(params)), n_vocab_(n_vocab), rng_(params_.seed), constraint_(std::move(constraint)) {
  cand_.reserve(static_cast<size_t>(n_vocab));
  counts_.assign(static_cast<size_t>(n_vocab), 0);
  if (constraint_) masked_.resize(static_cast<size_t>(n_vocab));
}

void Sampler::accept_prompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    if (t >= 0 && t < n_vocab_) history_.push_back(t);
  }
}

void Sampler::accept(int32_t token) {
  if (token >= 0 && token < n_vocab_) history_.push_back(token);
  if (constraint_) constraint_->accept(token);
}

void Sampler::reset() {
  history_.clear();
  rng_.seed(params_.seed);
}

void Sampler::apply_penalties() {
  const SamplingParams& p = params_;
  if (p.repeat_penalty == 1.0f && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) return;
  const size_t n = p.repeat_last_n < 0 ? history_.size()
                                       : std::min(history_.size(), static_cast<size_t>(p.repeat_last_n));
  const auto first = history_.end() - static_cast<std::ptrdiff_t>(n);
  for (auto it = first; it != history_.end(); ++it) ++counts_[static_cast<size_t>(*it)];
  for (Candidate& c : cand_) {  // cand_ is still indexed by token here
    const int32_t count = counts_[static_cast<size_t>(c.token)];
    if (count == 0) continue;
    c.logit = c.logit > 0 ? c.logit / p.repeat_penalty : c.logit * p.repeat_penalty;
    c.logit -= static_cast<float>(count) * p.frequency_penalty + p.presence_penalty;
  }
  for (auto it = first; it != history_.end(); ++it) counts_[static_cast<size_t>(*it)] = 0;
}

// Candidates are kept unsorted unless a step needs the order: a full sort of a 150K vocabulary
// per token would cost more than the rest of a decode step on a small model.
namespace {

// A function object rather than a function: the sorts inline it (a function pointer made
// top-k's partial sort over the vocabulary a quarter of a sample's time).
constexpr auto by_logit = [](const Sampler::Candidate& a, const Sampler::Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
};

}  // namespace

float Sampler::max_logit() const {
  float max = -INFINITY;
  for (const Candidate& c : cand_) max = std::max(max, c.logit);
  return max;
}

void Sampler::top_k(size_t k) {
  if (k >= cand_.size()) return;
  std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(), by_logit);
  cand_.resize(k);
}

// Candidates get probabilities p (softmax of their logits), in any order.
void Sampler::softmax() {
  const float max = max_logit();
  double sum = 0;
  for (Candidate& c : cand_) {
    c.p = std::exp(c.logit - max);
    sum += c.p;
  }
  for (Candidate& c : cand_) c.p = static_cast<float>(c.p / sum);
}

// Locally typical sampling (Meister et al. 2022): keep the tokens whose surprise is closest to
// the entropy until their mass reaches p.
void Sampler::typical(float p) {
  softmax();
  double entropy = 0;
  for (const Candidate& c : cand_) {
    if (c.p > 0) entropy -= c.p * std::log(c.p);
  }
  auto surprise_gap = [entropy](const Candidate& c) { return std::fabs(-std::log(c.p) - entropy); };
  std::stable_sort(cand_.begin(), cand_.end(),
                   [&](const Candidate& a, const Candidate& b) { return surprise_gap(a) < surprise_gap(b); });
  double mass = 0;
  size_t keep = cand_.size();
  for (size_t i = 0; i < cand_.size(); ++i) {
    mass += cand_[i].p;
    if (mass >= p) {
      keep = i + 1;
      break;
    }
  }
  cand_.resize(std::max<size_t>(1, keep));
}

// The most likely tokens whose mass reaches p: sorts only as many as needed, growing the
// sorted prefix fourfold until it holds the mass.
void Sampler::top_p(float p) {
  softmax();
  for (size_t k = std::min<size_t>(64, cand_.size());; k = std::min(4 * k, cand_.size())) {
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(), by_logit);
    double mass = 0;
    for (size_t i = 0; i < k; ++i) {
      mass += cand_[i].p;
      if (mass >= p) {
        cand_.resize(i + 1);
        return;
      }
    }
    if (k == cand_.size()) return;
  }
}

void Sampler::min_p(float p) {
  // In logit space: keep tokens with logit >= max + log(p).
  const float threshold = max_logit() + std::log(p);
  cand_.erase(std::remove_if(cand_.begin(), cand_.end(), [threshold](const Candidate& c) { return c.logit < threshold; }),
              cand_.end());
}

void token_logprobs(const float* logits, int64_t n_vocab, int n_top, Sampled& out, std::vector<int32_t>& order) {
  float max = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_z = max + std::log(sum);
  out.logprob = static_cast<float>(logits[out.token] - log_z);
  out.top.clear();
  if (n_top <= 0) return;
  order.resize(static_cast<size_t>(n_vocab));
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min(static_cast<size_t>(n_top), order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (size_t i = 0; i < k; ++i) out.top.push_back({.token = order[i], .logprob = static_cast<float>(logits[order[i]] - log_z)});
}

void Sampler::report_logprobs(const float* logits, Sampled& out) { token_logprobs(logits, n_vocab_, params_.n_probs, out, order_); }

Sampled Sampler::sample(const float* raw_logits) {
  const SamplingParams& p = params_;
  const float* logits = raw_logits;
  if (constraint_) {
    std::copy_n(raw_logits, n_vocab_, masked_.data());
    constraint_->mask(masked_);
    logits = masked_.data();
  }
  cand_.resize(static_cast<size_t>(n_vocab_));
  for (int64_t i = 0; i < n_vocab_; ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  for (const auto& [token, bias] : p.logit_bias) cand_[static_cast<size_t>(token)].logit += bias;
  apply_penalties();
  Sampled out;
  if (p.temperature <= 0.0f) {
    out.token = std::min_element(cand_.begin(), cand_.end(), by_logit)->token;
  } else {
    if (p.top_k > 0) top_k(static_cast<size_t>(p.top_k));
    if (p.typical_p < 1.0f) typical(p.typical_p);
    if (p.top_p < 1.0f) top_p(p.top_p);
    if (p.min_p > 0.0f) min_p(p.min_p);
    for (Candidate& c : cand_) c.logit /= p.temperature;
    softmax();
    // A draw in [0, 1) from 53 random bits: the same on every platform for a given seed.
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    double acc = 0;
    out.token = cand_.back().token;
    for (const Candidate& c : cand_) {
      acc += c.p;
      if (u < acc) {
        out.token = c.token;
        break;
      }
    }
  }
  if (p.logprobs) report_logprobs(logits, out);
  return out;
}

}  // namespace owl::sample
