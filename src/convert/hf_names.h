// Tensor names between Hugging Face and GGUF (internal to owl_convert). What differs between
// architectures (class names, Q/K row order, norm offsets, layer norm names) is in the model's
// architecture table, model/arch_registry.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "gguf/gguf.h"
#include "model/arch_registry.h"

namespace owl::convert::detail {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; nullopt when unknown.
std::optional<std::string> hf_to_gguf_name(const model::ArchInfo& arch, std::string_view hf_name);
std::optional<std::string> gguf_to_hf_name(const model::ArchInfo& arch, std::string_view gguf_name);

// Writes `w` to `output` in `type` ("" : as it is; else a quantize preset name: f16, q8_0,
// q4_k_m, ...), through a temporary F32 file that quantize_model reads.
core::Status write_as_type(const gguf::GgufWriter& w, const std::string& output, const std::string& type, int n_threads);

}  // namespace owl::convert::detail
