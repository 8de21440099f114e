#include "core/huge_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace owl::core {
namespace {

TEST(HugePageBuffer, IsAlignedZeroFilledAndWritableToItsEnd) {
  for (const size_t bytes : {size_t{1}, size_t{4096}, (size_t{2} << 20) + 1, size_t{5} << 20}) {
    HugePageBuffer b(bytes);
    ASSERT_EQ(b.size(), bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (uintptr_t{2} << 20), 0u) << bytes;
    EXPECT_TRUE(std::all_of(b.data(), b.data() + bytes, [](uint8_t v) { return v == 0; })) << bytes;
    b.data()[0] = 1;
    b.data()[bytes - 1] = 2;
    EXPECT_EQ(b.data()[bytes - 1], 2);
  }
}

}  // namespace
}  // namespace owl::core
