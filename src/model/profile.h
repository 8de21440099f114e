// owl bench --profile's figures, collected by forward() through Context::profile.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace owl::model {

// Where forward()'s time goes (owl bench --profile): the wall time, weight bytes and floating-point
// operations of each kind of weight matmul, split by the weights' types, and of attention (with the
// K/V store). The rest (norms, RoPE, the activation, residual adds, the embedding row) is total_ns
// less their sum. A matmul's time includes its LoRA adapters. Timing costs two clock reads per
// matmul and per attention.
struct StepProfile {
  enum class Part : uint8_t { kAttnQkv, kAttnOutput, kFfnGateUp, kFfnDown, kOutput, kAttention };
  struct Entry {
    Part part;
    uint32_t types = 0;  // a bit per gguf::TensorType of the weights timed together
    int64_t calls = 0;
    double ns = 0, weight_bytes = 0, flops = 0;
  };
  std::vector<Entry> entries;  // in the order first seen
  double total_ns = 0;          // of whole forward() calls
  int64_t forwards = 0, tokens = 0;

  void add(Part part, uint32_t types, double ns, double weight_bytes, double flops);
  static const char* part_name(Part part);       // "attn_q/k/v", "ffn_down", "attention", ...
  static std::string type_names(uint32_t types);  // "q4_k+q6_k"
};

}  // namespace owl::model
