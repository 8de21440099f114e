// A loaded model: its configuration and weights, used in place from the memory-mapped GGUF file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/huge_buffer.h"
#include "core/result.h"
#include "gguf/gguf.h"
#include "model/config.h"

namespace owl::model {

// A weight matrix W [n_out rows][n_in] (GGUF ne = [n_in, n_out]) or a vector (n_out = 1),
// pointing into the file map (or into Model::converted for vectors stored in another type).
struct Weight {
  gguf::TensorType type = gguf::TensorType::F32;
  const void* data = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 1;
  // The matrix in the kernels' packed layout (kernels::pack_weights) when load_model packed it;
  // forward()'s matmuls read it instead of data where the context's kernels can.
  const void* packed = nullptr;

  bool present() const { return data != nullptr; }
  const float* f32() const { return static_cast<const float*>(data); }  // vectors only
};

// Member names are GGUF tensor names (blk.N.<name>.weight / .bias).
struct LayerWeights {
  Weight attn_norm;
  Weight attn_q, attn_k, attn_v;        // absent when attn_qkv is fused (phi3)
  Weight attn_qkv;                      // [n_embd] -> [n_embd_q + 2 n_embd_kv]
  Weight attn_q_bias, attn_k_bias, attn_v_bias;
  Weight attn_q_norm, attn_k_norm;      // [head_dim]
  Weight attn_output;
  Weight post_attention_norm;
  Weight ffn_norm;
  Weight ffn_gate;                      // absent when ffn_up holds gate and up (phi3)
  Weight ffn_up;
  Weight ffn_down;
  Weight post_ffw_norm;
};

struct ModelWeights {
  Weight token_embd;   // [n_vocab rows][n_embd]
  Weight output_norm;
  Weight output;       // token_embd when tied
  Weight rope_freqs;   // [n_rot / 2] frequency divisors (Llama 3.1), optional
  std::vector<LayerWeights> layers;
};

struct Model {
  gguf::GgufFile file;
  ModelConfig config;
  ModelWeights weights;
  std::vector<std::vector<float>> converted;  // F32 copies of vectors stored as F16/BF16
  std::unique_ptr<core::HugePageBuffer> packed;  // every Weight::packed; null when none is
  double pack_seconds = 0;                       // the time packing took
};

struct LoadOptions {
  // Repack the matrices that this CPU's kernels read faster in another layout
  // (kernels::pack_weights: Q4_0 for the AVX-512 kernels) into memory of their own, and drop
  // their pages from the file map, so the process holds one copy. Off where the weights are read
  // as GGUF rows in bulk: fine-tuning's backward pass would map them back in beside the copy.
  bool pack_weights = true;
};

// Opens, validates and maps a model. Errors name the tensor, its shape or type.
core::Result<std::unique_ptr<Model>> load_model(const std::string& path, const LoadOptions& options = {});

}  // namespace owl::model
