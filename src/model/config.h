// ModelConfig: every shape and per-architecture option of the one generic transformer block.
// Filled from GGUF metadata by the architecture registry (arch_registry.h/.cpp), the only place
// that switches on the architecture name.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/result.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

namespace owl::model {

enum class Activation { kSilu, kGeluTanh };

struct ModelConfig {
  std::string arch;       // general.architecture
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;   // key_length; n_head * head_dim may differ from n_embd (qwen3)
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;

  // RoPE
  kernels::RopeMode rope_mode = kernels::RopeMode::kNormal;
  int64_t n_rot = 0;
  float rope_freq_base = 10000.0f;
  float rope_freq_base_swa = 10000.0f;  // sliding-window layers (gemma)
  float rope_freq_scale = 1.0f;          // 1 / linear scaling factor

  // Block options
  Activation activation = Activation::kSilu;
  bool qkv_bias = false;          // qwen2: attn_{q,k,v}.bias
  bool qk_norm = false;           // qwen3, gemma3: per-head RMSNorm of q and k before RoPE
  bool post_norms = false;        // gemma2/3: post_attention_norm, post_ffw_norm
  float embd_scale = 1.0f;        // gemma: sqrt(n_embd)
  float q_scale = 1.0f;           // multiplies q before attention (phi3, gemma)
  float kq_scale = 1.0f;          // multiplies q.k inside attention
  float attn_softcap = 0.0f;      // gemma2: s = cap * tanh(s / cap)
  float final_softcap = 0.0f;     // gemma2: logits = cap * tanh(logits / cap)
  int64_t sliding_window = 0;     // > 0: SWA layers see only the last `sliding_window` positions
  int64_t swa_pattern = 0;        // layer il is SWA when il % swa_pattern < swa_pattern - 1
  bool tied_output = false;       // gemma: output.weight is never read, the logits use token_embd

  int64_t n_embd_q() const { return n_head * head_dim; }
  int64_t n_embd_kv() const { return n_head_kv * head_dim; }

  // Floats per batch token of each activation buffer forward() works in (Context).
  struct ActivationWidths {
    int64_t x, cur, qkv, attn, ffn;
    int64_t total() const { return x + cur + qkv + attn + ffn; }
  };
  ActivationWidths activation_widths() const {
    return {.x = n_embd,
            .cur = std::max(n_embd, n_embd_q()),
            .qkv = n_embd_q() + 2 * n_embd_kv(),
            .attn = n_embd_q(),
            .ffn = 2 * n_ff};  // gate and up
  }
  bool is_swa_layer(int64_t il) const {
    return sliding_window > 0 && swa_pattern > 0 && il % swa_pattern < swa_pattern - 1;
  }
};

// Reads the configuration of a supported architecture; an unsupported one names itself.
core::Result<ModelConfig> load_config(const gguf::GgufFile& file);

}  // namespace owl::model
