// llama.cpp reference dumps (../shared/reference) and the comparison criteria of their README.
#pragma once

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace owl::model::testing {

struct Reference {
  std::string model_path;
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;  // [n_tokens][n_vocab]
  std::vector<int32_t> greedy;
};

inline Reference load_reference(const std::string& json_path, const std::string& models_dir) {
  std::ifstream in(json_path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Dumps of random-weight models may hold invalid UTF-8 in greedy_text; ignore it.
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, true, true);
  Reference r;
  r.model_path = models_dir + "/" + j["model"].get<std::string>();
  r.tokens = j["tokens"].get<std::vector<int32_t>>();
  r.logits = j["logits"].get<std::vector<std::vector<float>>>();
  r.greedy = j["greedy"].get<std::vector<int32_t>>();
  return r;
}

// KL(p_ref || p_ours) of the softmax of two logit rows, in double.
inline double kl_divergence(const float* ref, const float* ours, size_t n) {
  auto log_softmax = [n](const float* x, std::vector<double>& out) {
    double m = x[0];
    for (size_t i = 1; i < n; ++i) m = std::max(m, static_cast<double>(x[i]));
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
    const double l = m + std::log(s);
    out.resize(n);
    for (size_t i = 0; i < n; ++i) out[i] = x[i] - l;
  };
  std::vector<double> a, b;
  log_softmax(ref, a);
  log_softmax(ours, b);
  double kl = 0;
  for (size_t i = 0; i < n; ++i) kl += std::exp(a[i]) * (a[i] - b[i]);
  return kl;
}

inline int32_t argmax(const float* x, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;  // ties go to the lowest index, as llama.cpp
  }
  return static_cast<int32_t>(best);
}

}  // namespace owl::model::testing
