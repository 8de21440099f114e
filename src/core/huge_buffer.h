// Anonymous memory in 2 MiB pages where the kernel gives them, as model weights are mapped
// (MappedFile::open with populate): for buffers streamed as weights are, so that a figure read
// from them is not slowed by a TLB miss every 4 KiB that the weights do not pay.
#pragma once

#include <cstddef>
#include <cstdint>

namespace owl::core {

// Zero-filled and 2 MiB aligned; a page is allocated when first written (so filling it part by
// part, while freeing something else, never holds both). Throws std::bad_alloc when the mapping fails.
class HugePageBuffer {
 public:
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* mapping_ = nullptr;
  size_t mapped_bytes_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace owl::core
