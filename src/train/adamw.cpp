#include "train/adamw.h"

#include <cmath>

namespace owl::train {

void AdamW::update(std::vector<std::vector<float>>& params, const std::vector<std::vector<float>>& grads, float lr) {
  if (m.size() != params.size()) {
    m.clear();
    v.clear();
    for (const auto& p : params) {
      m.emplace_back(p.size(), 0.0f);
      v.emplace_back(p.size(), 0.0f);
    }
  }
  ++step;
  const AdamWOptions& o = options;
  const double bc1 = 1.0 - std::pow(static_cast<double>(o.beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(o.beta2), static_cast<double>(step));
  const auto step_size = static_cast<float>(lr / bc1);
  const auto bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = 1.0f - lr * o.weight_decay;
  for (size_t k = 0; k < params.size(); ++k) {
    float* p = params[k].data();
    const float* g = grads[k].data();
    float* mk = m[k].data();
    float* vk = v[k].data();
    for (size_t i = 0; i < params[k].size(); ++i) {
      p[i] *= decay;
      mk[i] = o.beta1 * mk[i] + (1.0f - o.beta1) * g[i];
      vk[i] = o.beta2 * vk[i] + (1.0f - o.beta2) * g[i] * g[i];
      const float denom = std::sqrt(vk[i]) / bc2_sqrt + o.eps;
      p[i] -= step_size * mk[i] / denom;
    }
  }
}

double clip_grad_norm(std::vector<std::vector<float>>& grads, double max_norm) {
  double ss = 0;
  for (const auto& g : grads) {
    for (float x : g) ss += static_cast<double>(x) * x;
  }
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const auto f = static_cast<float>(max_norm / (norm + 1e-6));
    for (auto& g : grads) {
      for (float& x : g) x *= f;
    }
  }
  return norm;
}

}  // namespace owl::train
