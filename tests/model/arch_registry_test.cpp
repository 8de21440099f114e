// The architecture table: every row configures a model, names are unique, and the facts other
// modules read from it (tied output, Hugging Face names) are those of the shipped models.
#include "model/arch_registry.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace owl::model {
namespace {

const std::string kSynthetic = std::string(OWL_SHARED_DIR) + "/reference/synthetic/";

TEST(ArchRegistry, NamesAreUniqueAndFound) {
  std::set<std::string_view> names, hf;
  for (const ArchInfo& a : architectures()) {
    EXPECT_TRUE(names.insert(a.name).second) << a.name;
    EXPECT_NE(a.apply, nullptr) << a.name;
    EXPECT_EQ(find_arch(a.name), &a);
    if (a.hf_class.empty()) continue;
    EXPECT_TRUE(hf.insert(a.hf_class).second) << a.hf_class;
    EXPECT_EQ(find_arch_by_hf(a.hf_class), &a);
    EXPECT_EQ(find_arch_by_hf(a.hf_model_type), &a);
  }
  EXPECT_EQ(find_arch("gpt2"), nullptr);
  EXPECT_EQ(find_arch_by_hf("BertModel"), nullptr);
  EXPECT_EQ(find_arch_by_hf(""), nullptr);  // gemma3 has no class: nothing converts from ""
  EXPECT_EQ(arch_names(), "llama, qwen2, qwen3, phi3, gemma2, gemma3");
  EXPECT_EQ(arch_names(/*with_hf_only=*/true), "llama, qwen2, qwen3, phi3, gemma2");
}

// Each shipped synthetic model loads with its row's options.
TEST(ArchRegistry, ConfigsOfTheSyntheticModels) {
  struct Case {
    const char* file;
    bool tied_output;
    kernels::RopeMode rope_mode;
  };
  using kernels::RopeMode;
  for (const Case& c : {Case{"llama-gqa", false, RopeMode::kNormal}, Case{"qwen2", false, RopeMode::kNeox},
                        Case{"qwen3", false, RopeMode::kNeox}, Case{"phi3", false, RopeMode::kNeox},
                        Case{"gemma2", true, RopeMode::kNeox}}) {
    auto file = gguf::GgufFile::open(kSynthetic + c.file + ".f32.gguf");
    ASSERT_TRUE(file.ok()) << file.message();
    auto config = load_config(*file);
    ASSERT_TRUE(config.ok()) << config.message();
    EXPECT_EQ(config->tied_output, c.tied_output) << c.file;
    EXPECT_EQ(config->rope_mode, c.rope_mode) << c.file;
    EXPECT_EQ(config->tied_output, find_arch(config->arch)->tied_output);
  }
}

}  // namespace
}  // namespace owl::model
