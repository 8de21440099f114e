// The file-type table against llama.cpp's numbers (include/llama.h, enum llama_ftype), and the
// metadata key helper.
#include "gguf/file_type.h"

#include <gtest/gtest.h>

#include <iterator>
#include <set>
#include <utility>

#include "gguf/keys.h"

namespace owl::gguf {
namespace {

TEST(FileType, NumbersAreLlamaCpps) {
  const std::pair<const char*, uint32_t> kLlamaFtype[] = {
      {"f32", 0},     {"f16", 1},     {"q4_0", 2},    {"q4_1", 3},    {"q8_0", 7},    {"q5_0", 8},
      {"q5_1", 9},    {"q2_k", 10},   {"q3_k_s", 11}, {"q3_k_m", 12}, {"q3_k_l", 13}, {"q4_k_s", 14},
      {"Q4_K_M", 15}, {"q5_k_s", 16}, {"q5_k_m", 17}, {"q6_k", 18},   {"bf16", 32},
  };
  for (const auto& [name, number] : kLlamaFtype) {
    const FileTypeInfo* f = find_file_type(name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(static_cast<uint32_t>(f->file_type), number) << name;
  }
  EXPECT_EQ(file_types().size(), std::size(kLlamaFtype));
  EXPECT_EQ(find_file_type("q7_k"), nullptr);
  EXPECT_EQ(find_file_type(""), nullptr);
}

TEST(FileType, EveryBaseTypeInfersOneFileType) {
  std::set<TensorType> bases, inferred;
  for (const FileTypeInfo& f : file_types()) {
    EXPECT_EQ(find_file_type(f.name), &f);
    bases.insert(f.base);
    if (!f.inferred_from_base) continue;
    EXPECT_TRUE(inferred.insert(f.base).second) << f.name;
    EXPECT_EQ(file_type_of_weights(f.base), f.file_type) << f.name;
  }
  EXPECT_EQ(bases, inferred);
  // A K-quant type alone stands for its _M mix, as llama.cpp's loader guesses it.
  EXPECT_EQ(file_type_of_weights(TensorType::Q3_K), FileType::Q3_K_M);
  EXPECT_EQ(file_type_of_weights(TensorType::Q4_K), FileType::Q4_K_M);
  EXPECT_EQ(file_type_of_weights(TensorType::Q5_K), FileType::Q5_K_M);
  EXPECT_EQ(file_type_of_weights(TensorType::Q8_K), FileType::F32);
}

TEST(Keys, ArchKeyJoinsWithADot) {
  EXPECT_EQ(keys::arch_key("llama", keys::kContextLength), "llama.context_length");
  EXPECT_EQ(keys::arch_key("gemma2", keys::kHeadCountKv), "gemma2.attention.head_count_kv");
}

}  // namespace
}  // namespace owl::gguf
