// libFuzzer target: the GGUF reader must refuse or accept any bytes without crashing, and every
// accepted tensor must lie inside the input.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = owl::gguf::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz");
  if (!file.ok()) return 0;
  for (const owl::gguf::TensorInfo& t : file->tensors()) {
    if (t.data < data || t.data + t.n_bytes > data + size) std::abort();
  }
  for (const owl::gguf::MetadataEntry& e : file->metadata()) (void)e.value.to_display();
  return 0;
}
