#include "core/huge_buffer.h"

#include <sys/mman.h>

#include <new>

namespace owl::core {

HugePageBuffer::HugePageBuffer(size_t bytes) : size_(bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  mapped_bytes_ = rounded + kHuge;  // room to align
  void* m = ::mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  mapping_ = m;
  data_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(m) + kHuge - 1) / kHuge * kHuge);
#ifdef MADV_HUGEPAGE
  ::madvise(data_, rounded, MADV_HUGEPAGE);
#endif
}

HugePageBuffer::~HugePageBuffer() { ::munmap(mapping_, mapped_bytes_); }

}  // namespace owl::core
