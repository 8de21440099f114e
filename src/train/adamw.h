// AdamW with PyTorch's update (torch.optim.AdamW): decoupled weight decay, bias-corrected
// moments, eps added to sqrt(v_hat). Parameters and moments are f32, one vector per tensor.
#pragma once

#include <cstdint>
#include <vector>

namespace owl::train {

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

struct AdamW {
  AdamWOptions options;
  int64_t step = 0;                      // updates done
  std::vector<std::vector<float>> m, v;  // first and second moments, shaped as the parameters

  // One update of every parameter tensor with its gradient, at learning rate `lr`.
  void update(std::vector<std::vector<float>>& params, const std::vector<std::vector<float>>& grads, float lr);
};

// The global L2 norm of the gradients; when above max_norm (> 0) they are scaled down to it
// (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
double clip_grad_norm(std::vector<std::vector<float>>& grads, double max_norm);

}  // namespace owl::train
