// Tensor names between Hugging Face and GGUF (internal to owl_convert). What differs between
// architectures (class names, Q/K row order, norm offsets, layer norm names) is in the model's
// architecture table, model/arch_registry.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/arch_registry.h"

namespace owl::convert::detail {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; nullopt when unknown.
std::optional<std::string> hf_to_gguf_name(const model::ArchInfo& arch, std::string_view hf_name);
std::optional<std::string> gguf_to_hf_name(const model::ArchInfo& arch, std::string_view gguf_name);

}  // namespace owl::convert::detail
