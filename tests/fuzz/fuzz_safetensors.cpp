// libFuzzer target: the safetensors header parser must refuse or accept any bytes without
// crashing, and every accepted tensor must lie inside the input with the size its shape says.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "convert/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = owl::convert::parse_safetensors(std::span<const uint8_t>(data, size), "fuzz");
  if (!h.ok()) return 0;
  for (const owl::convert::SafeTensor& t : h->tensors) {
    if (t.data.data() < data || t.data.data() + t.data.size() > data + size) std::abort();
    const int64_t bytes = t.n_elements() * owl::convert::safetensors_dtype_size(t.dtype);
    if (bytes != static_cast<int64_t>(t.data.size())) std::abort();
  }
  return 0;
}
