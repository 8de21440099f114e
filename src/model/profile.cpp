#include "model/profile.h"

#include <algorithm>

#include "gguf/tensor_type.h"

namespace owl::model {

void StepProfile::add(Part part, uint32_t types, double ns, double weight_bytes, double flops) {
  auto e = std::find_if(entries.begin(), entries.end(), [&](const Entry& x) { return x.part == part && x.types == types; });
  if (e == entries.end()) e = entries.insert(entries.end(), Entry{part, types});
  ++e->calls;
  e->ns += ns;
  e->weight_bytes += weight_bytes;
  e->flops += flops;
}

const char* StepProfile::part_name(Part part) {
  switch (part) {
    case Part::kAttnQkv: return "attn_q/k/v";
    case Part::kAttnOutput: return "attn_output";
    case Part::kFfnGateUp: return "ffn_gate/up";
    case Part::kFfnDown: return "ffn_down";
    case Part::kOutput: return "output";
    case Part::kAttention: return "attention";
  }
  return "?";
}

std::string StepProfile::type_names(uint32_t types) {
  std::string names;
  for (const gguf::TensorTypeInfo& info : gguf::kTensorTypes) {
    if ((types >> static_cast<uint32_t>(info.type) & 1u) == 0) continue;
    if (!names.empty()) names += '+';
    names += info.name;
  }
  return names;
}

}  // namespace owl::model
