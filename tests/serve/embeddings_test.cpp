// POST /v1/embeddings: validation, OpenAI's shape (float and base64), and vectors that match
// llama.cpp's for the stories model.
#include "serve/embeddings.h"

#include <cmath>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "serve/server_fixture.h"

namespace owl::serve {
namespace {

std::variant<EmbeddingRequest, ApiError> parse(const std::string& body) {
  return parse_embedding_request(Json::parse(body), 512);
}

TEST(EmbeddingsApi, InputForms) {
  auto one = std::get<EmbeddingRequest>(parse(R"({"input":"hello","model":"m"})"));
  EXPECT_EQ(one.texts.size(), 1u);
  EXPECT_EQ(one.model, "m");
  auto many = std::get<EmbeddingRequest>(parse(R"({"input":["a","b","c"],"encoding_format":"base64"})"));
  EXPECT_EQ(many.size(), 3u);
  EXPECT_TRUE(many.base64);
  auto ids = std::get<EmbeddingRequest>(parse(R"({"input":[1,2,3]})"));
  ASSERT_EQ(ids.token_inputs.size(), 1u);
  EXPECT_EQ(ids.token_inputs[0], (std::vector<int32_t>{1, 2, 3}));
  auto id_lists = std::get<EmbeddingRequest>(parse(R"({"input":[[1,2],[3]]})"));
  EXPECT_EQ(id_lists.token_inputs.size(), 2u);
}

TEST(EmbeddingsApi, ErrorsNameTheParameterAndValue) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({})", "'input' is required"},
      {R"({"input":""})", "empty string"},
      {R"({"input":[]})", "not empty"},
      {R"({"input":["a",2]})", "input 1 is 2"},
      {R"({"input":[1,600]})", "holds 600, not a token id in [0, 512)"},
      {R"({"input":"a","encoding_format":"int8"})", "'encoding_format' is \"int8\""},
      {R"({"input":"a","dimensions":0})", "'dimensions' is 0"},
  };
  for (const auto& [body, expected] : cases) {
    auto r = parse(body);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << body;
    EXPECT_EQ(std::get<ApiError>(r).status, 400);
    EXPECT_NE(std::get<ApiError>(r).message.find(expected), std::string::npos) << std::get<ApiError>(r).message;
  }
}

TEST(EmbeddingsApi, Base64IsLittleEndianFloat32) {
  EXPECT_EQ(base64_floats({1.0f}), "AACAPw==");  // 0x3f800000, little-endian
  EXPECT_EQ(base64_floats({1.0f, -2.0f, 0.5f}), "AACAPwAAAMAAAAA/");
  EXPECT_EQ(base64_floats({}), "");
}

TEST_F(ServerTest, EmbeddingsMatchLlamaCpp) {
  start();
  std::ifstream in(std::string(OWL_SHARED_DIR) + "/reference/embeddings/stories260K.mean.json");
  const Json ref = Json::parse(in);
  std::ifstream texts_in(std::string(OWL_SHARED_DIR) + "/reference/embeddings/texts.txt");
  Json inputs = Json::array();
  for (std::string line; std::getline(texts_in, line);) {
    if (!line.empty()) inputs.push_back(line);
  }
  auto res = post("/v1/embeddings", {{"model", "stories260K"}, {"input", inputs}});
  ASSERT_EQ(res->status, 200) << res->body;
  const Json j = Json::parse(res->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "stories260K");
  ASSERT_EQ(j["data"].size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto got = j["data"][i]["embedding"].get<std::vector<double>>();
    const auto want = ref["data"][i]["embedding"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size());
    double ab = 0, aa = 0, bb = 0;
    for (size_t k = 0; k < got.size(); ++k) ab += got[k] * want[k], aa += got[k] * got[k], bb += want[k] * want[k];
    EXPECT_GE(ab / std::sqrt(aa * bb), 0.9999) << "input " << i;
  }
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 20);
  // base64 carries the same floats.
  auto b64 = post("/v1/embeddings", {{"input", inputs[0]}, {"encoding_format", "base64"}});
  ASSERT_EQ(b64->status, 200);
  std::vector<float> first;
  for (double v : j["data"][0]["embedding"]) first.push_back(static_cast<float>(v));
  EXPECT_EQ(Json::parse(b64->body)["data"][0]["embedding"], base64_floats(first));
  // A context overflow and a dimension the model cannot give are 400s naming them.
  auto too_long = post("/v1/embeddings", {{"input", std::string(3000, 'a')}});
  EXPECT_EQ(too_long->status, 400);
  EXPECT_EQ(Json::parse(too_long->body)["error"]["code"], "context_length_exceeded");
  auto dims = post("/v1/embeddings", {{"input", "hi"}, {"dimensions", 32}});
  EXPECT_EQ(dims->status, 400);
  EXPECT_NE(dims->body.find("vectors of 64 only"), std::string::npos) << dims->body;
}

}  // namespace
}  // namespace owl::serve
