// `owl embed`: OpenAI's response shape with --json, one line per input otherwise, stdin input.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support/run_owl.h"

namespace {

using owl::testing::run_owl;

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";
const std::string kTexts = std::string(OWL_SHARED_DIR) + "/reference/embeddings/texts.txt";

TEST(EmbedCli, JsonHasOpenAIsShapeAndUnitVectors) {
  auto r = run_owl("embed -m " + kModel + " -f " + kTexts + " --json 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(j["data"][i]["index"], i);
    const auto v = j["data"][i]["embedding"].get<std::vector<double>>();
    ASSERT_EQ(v.size(), 64u);
    double norm = 0;
    for (double x : v) norm += x * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 20);
}

TEST(EmbedCli, LinesFromStandardInputAndErrors) {
  auto r = run_owl("embed -m " + kModel + " --pooling last -f - < " + kTexts + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::istringstream lines(r.out);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    std::istringstream values(line);
    int count = 0;
    for (double x; values >> x;) ++count;
    EXPECT_EQ(count, 64);
  }
  EXPECT_EQ(n, 4);
  auto none = run_owl("embed -m " + kModel);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.out.find("no input"), std::string::npos) << none.out;
  auto pooling = run_owl("embed -m " + kModel + " -p hi --pooling max");
  EXPECT_EQ(pooling.exit_code, 1);
  EXPECT_NE(pooling.out.find("'max' is not one of: mean, last, cls"), std::string::npos) << pooling.out;
}

}  // namespace
