// The one table of what differs between architectures when converting to and from Hugging Face:
// class names, tensor names, Q/K row order, norm offsets (internal to owl_convert).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace owl::convert::detail {

struct HfArch {
  std::string_view gguf;       // general.architecture
  std::string_view hf_class;   // config.json architectures[0]
  std::string_view model_type; // config.json model_type
  bool permute_qk;             // llama: HF's rotate-half Q/K rows are interleaved in GGUF
  bool norm_plus_one;          // gemma: HF stores w for x * (1 + w); GGUF stores 1 + w
};

const HfArch* find_arch_by_hf(std::string_view hf_class_or_model_type);
const HfArch* find_arch_by_gguf(std::string_view gguf_arch);

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; nullopt when unknown.
std::optional<std::string> hf_to_gguf_name(const HfArch& arch, std::string_view hf_name);
std::optional<std::string> gguf_to_hf_name(const HfArch& arch, std::string_view gguf_name);

}  // namespace owl::convert::detail
