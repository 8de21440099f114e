#include "gguf/tensor_type.h"

#include <cctype>

#include "core/result.h"

namespace owl::gguf {
namespace {

constexpr bool every_type_has_a_slot() {
  for (const TensorTypeInfo& info : kTensorTypes) {
    if (static_cast<uint32_t>(info.type) >= kTensorTypeSlots) return false;
  }
  return true;
}
static_assert(every_type_has_a_slot());

}  // namespace

const TensorTypeInfo& type_info(TensorType type) {
  const TensorTypeInfo* info = find_type_info(static_cast<uint32_t>(type));
  OWL_CHECK(info != nullptr);
  return *info;
}

std::optional<TensorType> type_from_name(std::string_view name) {
  for (const TensorTypeInfo& info : kTensorTypes) {
    if (info.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(name[i])) == info.name[i];
    }
    if (same) return info.type;
  }
  return std::nullopt;
}

}  // namespace owl::gguf
