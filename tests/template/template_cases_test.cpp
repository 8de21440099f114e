// Every case of every ../shared/templates/*.json: the .jinja rendered over the case's messages
// must equal Hugging Face's output byte for byte, or fail with the template's own error.
#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "template/chat.h"

namespace owl::tmpl {
namespace {

const std::filesystem::path kTemplateDir = std::filesystem::path(OWL_SHARED_DIR) / "templates";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> case_files() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kTemplateDir, ec)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The fixed clock of the fixtures: 2026-01-15 12:00:00.
std::tm fixture_time() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_hour = 12;
  tm.tm_wday = 4;  // Thursday
  tm.tm_yday = 14;
  return tm;
}

class TemplateCases : public ::testing::TestWithParam<std::string> {};

TEST_P(TemplateCases, RendersLikeHuggingFace) {
  auto spec = nlohmann::ordered_json::parse(read_text(kTemplateDir / (GetParam() + ".json")));
  std::string source = read_text(kTemplateDir / spec["template_file"].get<std::string>());
  auto parsed = Template::parse(source);
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  int index = 0;
  for (const auto& c : spec["cases"]) {
    ChatOptions options;
    options.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    options.bos_token = c["bos_token"].get<std::string>();
    options.eos_token = c["eos_token"].get<std::string>();
    options.render.clock = fixture_time;
    auto out = render_chat(*parsed, c["messages"], options);
    std::string label = c["case"].get<std::string>() + (options.add_generation_prompt ? " +gen" : " -gen") +
                        " #" + std::to_string(index++);
    if (c.contains("error")) {
      ASSERT_FALSE(out.ok()) << label << ": rendered instead of failing";
      EXPECT_EQ(out.message(), c["error"].get<std::string>()) << label;
    } else {
      ASSERT_TRUE(out.ok()) << label << ": " << out.message();
      EXPECT_EQ(*out, c["expected"].get<std::string>()) << label;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, TemplateCases, ::testing::ValuesIn(case_files()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(TemplateCases, FixturesArePresent) { EXPECT_GE(case_files().size(), 40u) << kTemplateDir; }

}  // namespace
}  // namespace owl::tmpl
