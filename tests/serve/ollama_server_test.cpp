// Ollama's API on the HTTP server in-process: streamed and whole answers, the same text as the
// OpenAI endpoints for the same request, options, errors in Ollama's shape, the model
// descriptions, embeddings, and the request log, metrics and guard every request goes through.
#include <filesystem>

#include <gtest/gtest.h>

#include "serve/ollama.h"
#include "serve/server_fixture.h"

namespace owl::serve {
namespace {

// The objects of a newline-delimited JSON body, checking that every line is one (a line may
// start with the spaces written while the server waited).
std::vector<Json> ndjson_lines(const std::string& body) {
  std::vector<Json> out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find('\n', at);
    EXPECT_NE(end, std::string::npos) << "unterminated line: " << body.substr(at);
    const std::string line = body.substr(at, end == std::string::npos ? std::string::npos : end - at);
    out.push_back(Json::parse(line));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return out;
}

Json generate_body(const std::string& prompt, int num_predict, bool stream = false) {
  return {{"model", "stories260K"},
          {"prompt", prompt},
          {"stream", stream},
          {"options", {{"num_predict", num_predict}, {"temperature", 0}}}};
}

Json ollama_chat_body(const std::string& text, int num_predict, bool stream = false) {
  return {{"model", "stories260K"},
          {"messages", {{{"role", "user"}, {"content", text}}}},
          {"stream", stream},
          {"options", {{"num_predict", num_predict}, {"temperature", 0}}}};
}

// An answer's JSON object, checking the status.
Json ok_json(const httplib::Result& res) {
  EXPECT_TRUE(res);
  if (!res) return {};
  EXPECT_EQ(res->status, 200) << res->body;
  return Json::parse(res->body);
}

void expect_ollama_error(const httplib::Result& res, int status, const std::string& fragment) {
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, status) << res->body;
  const Json j = Json::parse(res->body);
  ASSERT_TRUE(j.contains("error") && j["error"].is_string()) << res->body;  // Ollama's shape: a string
  EXPECT_NE(j["error"].get<std::string>().find(fragment), std::string::npos) << j["error"];
}

TEST_F(ServerTest, OllamaGenerateStreamsLinesThenTheSameTextWhole) {
  start();
  auto res = post("/api/generate", generate_body("Once upon a time", 8, true));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/x-ndjson");
  const std::vector<Json> lines = ndjson_lines(res->body);
  ASSERT_GE(lines.size(), 2u);
  std::string text;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["done"], false);
    EXPECT_EQ(lines[i]["model"], "stories260K");
    text += lines[i]["response"].get<std::string>();
  }
  const Json& done = lines.back();
  EXPECT_EQ(done["done"], true);
  EXPECT_EQ(done["response"], "");
  EXPECT_EQ(done["done_reason"], "length");
  EXPECT_EQ(done["eval_count"], 8);
  EXPECT_GT(done["prompt_eval_count"].get<int>(), 3);
  EXPECT_GT(done["eval_duration"].get<int64_t>(), 0);
  EXPECT_GT(done["prompt_eval_duration"].get<int64_t>(), 0);
  EXPECT_GE(done["total_duration"].get<int64_t>(),
            done["prompt_eval_duration"].get<int64_t>() + done["eval_duration"].get<int64_t>());
  EXPECT_GE(done["load_duration"].get<int64_t>(), 0);
  EXPECT_TRUE(done["created_at"].is_string());

  res = post("/api/generate", generate_body("Once upon a time", 8));
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json; charset=utf-8");
  const Json whole = Json::parse(res->body);
  EXPECT_EQ(whole["response"], text);
  EXPECT_EQ(whole["done"], true);
  EXPECT_EQ(whole["done_reason"], "length");
  EXPECT_EQ(whole["eval_count"], 8);
  EXPECT_EQ(whole["prompt_eval_count"], done["prompt_eval_count"]);
}

TEST_F(ServerTest, OllamaChatStreamsMessages) {
  start();
  auto res = post("/api/chat", ollama_chat_body("Tell me a story", 10, true));
  ASSERT_EQ(res->status, 200) << res->body;
  const std::vector<Json> lines = ndjson_lines(res->body);
  ASSERT_GE(lines.size(), 2u);
  std::string text;
  for (const Json& line : lines) {
    EXPECT_EQ(line["message"]["role"], "assistant");
    text += line["message"]["content"].get<std::string>();
  }
  EXPECT_EQ(lines.back()["done"], true);
  EXPECT_EQ(lines.back()["message"]["content"], "");
  const Json whole = ok_json(post("/api/chat", ollama_chat_body("Tell me a story", 10)));
  EXPECT_EQ(whole["message"]["content"], text);
}

// One path: the same request through either API gives the same tokens and counts.
TEST_F(ServerTest, OllamaAnswersAreTheOpenAIEndpointsAnswers) {
  start();
  const Json openai = ok_json(post("/v1/chat/completions", chat_body("Tell me a story", 12)));
  const Json chat = ok_json(post("/api/chat", ollama_chat_body("Tell me a story", 12)));
  EXPECT_EQ(chat["message"]["content"], openai["choices"][0]["message"]["content"]);
  EXPECT_EQ(chat["prompt_eval_count"], openai["usage"]["prompt_tokens"]);
  EXPECT_EQ(chat["eval_count"], openai["usage"]["completion_tokens"]);
  EXPECT_EQ(chat["done_reason"], openai["choices"][0]["finish_reason"]);
  // generate's prompt is the user message of the chat template
  const Json generated = ok_json(post("/api/generate", generate_body("Tell me a story", 12)));
  EXPECT_EQ(generated["response"], openai["choices"][0]["message"]["content"]);
  // raw: the prompt as it is, as /v1/completions takes it
  const Json completion = ok_json(post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 9}, {"temperature", 0}}));
  Json raw = generate_body("Once upon a time", 9);
  raw["raw"] = true;
  const Json raw_answer = ok_json(post("/api/generate", raw));
  EXPECT_EQ(raw_answer["response"], completion["choices"][0]["text"]);
  EXPECT_EQ(raw_answer["prompt_eval_count"], completion["usage"]["prompt_tokens"]);
}

TEST_F(ServerTest, OllamaNumPredictAndStop) {
  start();
  const Json five = ok_json(post("/api/generate", generate_body("Once upon a time", 5)));
  EXPECT_EQ(five["done_reason"], "length");
  EXPECT_EQ(five["eval_count"], 5);
  const std::string text = ok_json(post("/api/generate", generate_body("Once upon a time", 40)))["response"];
  // A word from the middle of the answer stops it there.
  const size_t space = text.find(' ', text.size() / 3);
  ASSERT_NE(space, std::string::npos) << text;
  const std::string word = text.substr(space + 1, text.find(' ', space + 1) - space - 1);
  ASSERT_FALSE(word.empty()) << text;
  Json body = generate_body("Once upon a time", 40);
  body["options"]["stop"] = {"never appears", word};
  const Json stopped = ok_json(post("/api/generate", body));
  EXPECT_EQ(stopped["done_reason"], "stop");
  EXPECT_EQ(stopped["response"], text.substr(0, text.find(word))) << "stop word: " << word;
}

TEST_F(ServerTest, OllamaSeedReproducesSampling) {
  start();
  auto sample = [&](int seed) {
    Json body = ollama_chat_body("Tell me a story", 16);
    body["options"] = {{"num_predict", 16}, {"temperature", 1.0}, {"seed", seed}};
    return ok_json(post("/api/chat", body))["message"]["content"].get<std::string>();
  };
  const std::string a = sample(7);
  EXPECT_EQ(sample(7), a);
  bool differs = false;
  for (int seed = 8; seed < 12 && !differs; ++seed) differs = sample(seed) != a;
  EXPECT_TRUE(differs) << "other seeds give other samples";
}

TEST_F(ServerTest, OllamaLogprobs) {
  start();
  Json body = ollama_chat_body("Hello", 4);
  body["logprobs"] = true;
  body["top_logprobs"] = 2;
  const Json j = ok_json(post("/api/chat", body));
  ASSERT_EQ(j["done_reason"], "length");
  ASSERT_EQ(j["logprobs"].size(), 4u);
  std::string joined;
  for (const Json& t : j["logprobs"]) {
    joined += t["token"].get<std::string>();
    ASSERT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_NEAR(t["logprob"].get<double>(), t["top_logprobs"][0]["logprob"].get<double>(), 1e-6);  // greedy
    EXPECT_EQ(t["bytes"].size(), t["token"].get<std::string>().size());
  }
  EXPECT_EQ(joined, j["message"]["content"]);
}

TEST_F(ServerTest, OllamaErrorsHaveOllamasShape) {
  start();
  Json body = generate_body("hi", 4);
  body["model"] = "llama3.2";
  expect_ollama_error(post("/api/generate", body), 404, "model 'llama3.2' not found");
  body.erase("model");
  expect_ollama_error(post("/api/generate", body), 400, "model is required");
  expect_ollama_error(client->Post("/api/chat", "{\"model\":", "application/json"), 400, "not valid JSON");
  body = generate_body("hi", 4);
  body["options"]["temperature"] = "hot";
  expect_ollama_error(post("/api/generate", body), 400, "'options.temperature' must be a number");
  body = generate_body("hi", 4);
  body["options"]["num_ctx"] = 100000;
  expect_ollama_error(post("/api/generate", body), 400, "'options.num_ctx' is 100000, more than the 256 positions");
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "the cat sat on the mat ";
  expect_ollama_error(post("/api/generate", generate_body(long_text, 4)), 400, "256");
  auto res = client->Get("/api/chat");
  expect_ollama_error(res, 405, "takes POST");
  EXPECT_EQ(res->get_header_value("Allow"), "POST");
  expect_ollama_error(client->Post("/api/tags", "{}", "application/json"), 405, "takes GET");
  // The tag Ollama's names carry by default names the model too.
  body = generate_body("hi", 2);
  body["model"] = "stories260K:latest";
  EXPECT_EQ(ok_json(post("/api/generate", body))["model"], "stories260K:latest");
  // Nothing to run: the model is loaded.
  const Json load = ok_json(post("/api/generate", {{"model", "stories260K"}}));
  EXPECT_EQ(load["done_reason"], "load");
  EXPECT_EQ(ok_json(post("/api/chat", {{"model", "stories260K"}, {"messages", Json::array()}}))["done_reason"], "load");
}

TEST_F(ServerTest, OllamaErrorsOfTheServerItself) {
  delay_model = true;
  start({.n_parallel = 1, .n_ctx = 256, .n_threads = 2}, {.max_body_bytes = 4096});
  auto res = client->Get("/api/tags");
  expect_ollama_error(res, 503, "loading");
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  expect_ollama_error(post("/api/chat", ollama_chat_body("hi", 2)), 503, "loading");
  server->set_models(models);
  expect_ollama_error(post("/api/generate", generate_body(std::string(5000, 'a'), 2)), 413, "larger");
  expect_ollama_error(post("/api/pull", {{"model", "llama3.2"}}), 404, "404");
  server->drain();
  expect_ollama_error(post("/api/generate", generate_body("hi", 2)), 503, "shutting down");
}

TEST_F(ServerTest, OllamaAcceptAnyModelAnswersWithTheServedModel) {
  start({.n_parallel = 1, .n_ctx = 256, .n_threads = 2}, {.accept_any_model = true});
  Json body = ollama_chat_body("hi", 3);
  body["model"] = "llama3.2";
  EXPECT_EQ(ok_json(post("/api/chat", body))["model"], "stories260K:latest");
  EXPECT_EQ(ok_json(post("/api/show", {{"model", "llama3.2"}}))["details"]["family"], "llama");
}

TEST_F(ServerTest, OllamaDescribesItsModels) {
  start();
  const auto file_size = std::filesystem::file_size(std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf");
  const Json tags = ok_json(client->Get("/api/tags"));
  ASSERT_EQ(tags["models"].size(), 1u);
  const Json& m = tags["models"][0];
  EXPECT_EQ(m["name"], "stories260K:latest");
  EXPECT_EQ(m["model"], "stories260K:latest");
  EXPECT_EQ(m["size"], file_size);
  EXPECT_TRUE(m["modified_at"].is_string());
  EXPECT_EQ(m["details"]["format"], "gguf");
  EXPECT_EQ(m["details"]["family"], "llama");
  EXPECT_EQ(m["details"]["families"], Json::array({"llama"}));
  const std::string params = m["details"]["parameter_size"];
  EXPECT_EQ(params.back(), 'K') << params;  // 260K parameters or so
  const std::string quant = m["details"]["quantization_level"];
  EXPECT_FALSE(quant.empty());
  EXPECT_EQ(quant.find_first_of("abcdefghijklmnopqrstuvwxyz"), std::string::npos) << quant;  // "Q8_0", "F32"

  const Json show = ok_json(post("/api/show", {{"model", "stories260K"}}));
  EXPECT_EQ(show["details"], m["details"]);
  EXPECT_EQ(show["model_info"]["general.architecture"], "llama");
  EXPECT_EQ(show["model_info"]["tokenizer.ggml.tokens"], Json::array());  // the vocabulary only when verbose
  EXPECT_GT(show["model_info"]["general.parameter_count"].get<int64_t>(), 100000);
  EXPECT_NE(show["modelfile"].get<std::string>().find("\nFROM stories260K.gguf\n"), std::string::npos) << show["modelfile"];
  EXPECT_EQ(show["parameters"], "num_ctx 256");
  EXPECT_EQ(show["capabilities"][0], "completion");
  const Json verbose = ok_json(post("/api/show", {{"name", "stories260K:latest"}, {"verbose", true}}));
  EXPECT_EQ(verbose["model_info"]["tokenizer.ggml.tokens"].size(), 512u);
  expect_ollama_error(post("/api/show", Json::object()), 400, "model is required");
  expect_ollama_error(post("/api/show", {{"model", "nope"}}), 404, "not found");

  const Json ps = ok_json(client->Get("/api/ps"));
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["name"], "stories260K:latest");
  EXPECT_EQ(ps["models"][0]["context_length"], 256);
  EXPECT_GT(ps["models"][0]["size"].get<uint64_t>(), file_size);  // the weights and the KV cache
  EXPECT_EQ(ps["models"][0]["size_vram"], 0);
  EXPECT_GT(ps["models"][0]["expires_at"].get<std::string>(), rfc3339(std::chrono::system_clock::now()));  // far ahead
  EXPECT_EQ(ok_json(client->Get("/api/version")), (Json{{"version", kOllamaApiVersion}}));
}

TEST_F(ServerTest, OllamaEmbeddingsAreTheV1Embeddings) {
  start();
  const std::vector<std::string> texts = {"Once upon a time there was a cat.", "The dog ran to the park."};
  const Json v1 = ok_json(post("/v1/embeddings", {{"input", texts}, {"encoding_format", "float"}}));
  const Json embed = ok_json(post("/api/embed", {{"model", "stories260K"}, {"input", texts}}));
  EXPECT_EQ(embed["model"], "stories260K");
  ASSERT_EQ(embed["embeddings"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(embed["embeddings"][i], v1["data"][i]["embedding"]);
  EXPECT_EQ(embed["prompt_eval_count"], v1["usage"]["prompt_tokens"]);
  EXPECT_GT(embed["total_duration"].get<int64_t>(), 0);
  const Json legacy = ok_json(post("/api/embeddings", {{"model", "stories260K"}, {"prompt", texts[0]}}));
  EXPECT_EQ(legacy["embedding"], v1["data"][0]["embedding"]);
  EXPECT_EQ(ok_json(post("/api/embed", {{"model", "stories260K"}, {"input", ""}}))["embeddings"], Json::array());
  // Longer than the context: cut to it (Ollama's default), or refused with truncate false.
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "the cat sat on the mat ";
  EXPECT_EQ(ok_json(post("/api/embed", {{"model", "stories260K"}, {"input", long_text}}))["prompt_eval_count"], 256);
  expect_ollama_error(post("/api/embed", {{"model", "stories260K"}, {"input", long_text}, {"truncate", false}}), 400,
                      "more than the context of 256");
  expect_ollama_error(post("/api/embed", {{"model", "stories260K"}, {"input", "a"}, {"dimensions", 3}}), 400, "dimensions");
}

TEST_F(ServerTest, OllamaRequestsAreLoggedAndCountedAsEveryRequest) {
  start();
  const Json answer = ok_json(post("/api/chat", ollama_chat_body("Tell me a story", 4)));
  const std::vector<Json> log = wait_log(1);
  const Json& line = log.back();
  EXPECT_EQ(line["endpoint"], "/api/chat");
  EXPECT_EQ(line["model"], "stories260K");
  EXPECT_EQ(line["status"], 200);
  EXPECT_EQ(line["stream"], false);
  EXPECT_EQ(line["prompt_tokens"], answer["prompt_eval_count"]);
  EXPECT_EQ(line["completion_tokens"], answer["eval_count"]);
  EXPECT_EQ(line["finish_reason"], "length");
  EXPECT_TRUE(line["ttft_ms"].is_number());
  post("/api/generate", generate_body("hi", 2, true));
  post("/api/embed", {{"model", "stories260K"}, {"input", "hi"}});
  const std::string text = client->Get("/metrics")->body;
  for (const char* counted : {"owl_requests_total{endpoint=\"/api/chat\",status=\"200\"} 1",
                              "owl_requests_total{endpoint=\"/api/generate\",status=\"200\"} 1",
                              "owl_requests_total{endpoint=\"/api/embed\",status=\"200\"} 1"}) {
    EXPECT_NE(text.find(counted), std::string::npos) << counted;
  }
  EXPECT_GE(metric("owl_generated_tokens_total"), answer["eval_count"].get<double>() + 2);
}

TEST_F(ServerTest, OllamaFormatTakesTheResponseFormatPath) {
  start({.n_parallel = 2, .n_ctx = 512, .n_threads = 2});
  // The same constraint through either API: the same answer, or the same refusal.
  Json body = ollama_chat_body("Tell me about a cat", 48);
  body["format"] = "json";
  auto res = post("/api/chat", body);
  Json openai_body = chat_body("Tell me about a cat", 48);
  openai_body["response_format"] = {{"type", "json_object"}};
  auto openai = post("/v1/chat/completions", openai_body);
  ASSERT_TRUE(res && openai);
  EXPECT_EQ(res->status, openai->status) << res->body << "\n" << openai->body;
  if (res->status == 200) {
    const Json j = Json::parse(res->body);
    EXPECT_EQ(j["message"]["content"], Json::parse(openai->body)["choices"][0]["message"]["content"]);
    if (j["done_reason"] == "stop") {
      EXPECT_TRUE(Json::parse(j["message"]["content"].get<std::string>()).is_object()) << j["message"]["content"];
    }
  } else {
    expect_ollama_error(res, 400, "format");
  }
  body["format"] = {{"type", "object"}, {"properties", {{"tags", {{"type", "array"}, {"uniqueItems", true}}}}}};
  expect_ollama_error(post("/api/chat", body), 400, "'format'");
}

TEST_F(ServerTest, OllamaStreamThatLosesItsClientIsCancelled) {
  start({.n_parallel = 1, .n_ctx = 2048, .n_threads = 2});
  Json body = generate_body("Once upon a time", 2000, true);
  body["options"] = {{"num_predict", 2000}, {"temperature", 1.0}, {"seed", 3}};  // 2000 tokens when left alone
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/api/generate";
  req.body = dump_json(body);
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  httplib::Client c("127.0.0.1", port_);
  c.send(req);  // the receiver's false closes the connection
  EXPECT_TRUE(engine->wait_idle(std::chrono::seconds(10)));
  const Json line = wait_log(1).back();
  EXPECT_EQ(line["endpoint"], "/api/generate");
  EXPECT_EQ(line["finish_reason"], "cancelled");
  EXPECT_LT(line["completion_tokens"].get<int>(), 1000);
  EXPECT_EQ(metric("owl_running_sequences"), 0);
}

// Authenticates one key and records what is settled.
struct RecordingGuard : Guard {
  std::variant<Principal, ApiError> authenticate(const Caller& caller) override {
    if (caller.authorization == "Bearer good") return Principal{.name = "alice"};
    return ApiError{.status = 401, .message = "missing or wrong API key", .code = "invalid_api_key"};
  }
  std::optional<ApiError> admit(const Principal&, Work&) override { return std::nullopt; }
  void settle(const Principal&, const Work&, const Used& used) override {
    std::lock_guard<std::mutex> lock(mutex);
    settled.push_back(used.prompt_tokens + used.completion_tokens);
  }
  std::mutex mutex;
  std::vector<int64_t> settled;
};

TEST_F(ServerTest, TheGuardCoversOllamasEndpoints) {
  auto guard = std::make_shared<RecordingGuard>();
  start({.n_parallel = 2, .n_ctx = 256, .n_threads = 2}, ServerOptions{.guard = guard});
  for (const char* path : {"/api/tags", "/api/ps", "/api/version"}) expect_ollama_error(client->Get(path), 401, "API key");
  for (const char* path : {"/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show"}) {
    expect_ollama_error(post(path, generate_body("x", 2)), 401, "API key");
  }
  client->set_bearer_token_auth("good");
  const Json j = ok_json(post("/api/generate", generate_body("Once", 3)));
  std::lock_guard<std::mutex> lock(guard->mutex);
  ASSERT_EQ(guard->settled.size(), 1u);
  EXPECT_EQ(guard->settled[0], j["prompt_eval_count"].get<int64_t>() + j["eval_count"].get<int64_t>());
}

}  // namespace
}  // namespace owl::serve
