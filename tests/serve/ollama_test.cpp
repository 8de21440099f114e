// Ollama's API without a server: the translation of /api/generate and /api/chat bodies into the
// requests of the OpenAI endpoints, what is refused, the answer lines and the embed bodies.
#include "serve/ollama.h"

#include <gtest/gtest.h>

#include "support/stories.h"

namespace owl::serve {
namespace {

constexpr int64_t kVocab = 512;

OllamaRequest parse_ok(std::string_view body, OllamaEndpoint e = OllamaEndpoint::kGenerate) {
  auto r = parse_ollama_request(Json::parse(body), e, kVocab);
  if (auto* err = std::get_if<ApiError>(&r)) ADD_FAILURE() << err->message;
  return std::holds_alternative<OllamaRequest>(r) ? std::get<OllamaRequest>(r) : OllamaRequest{};
}

ApiError parse_error(std::string_view body, OllamaEndpoint e = OllamaEndpoint::kGenerate) {
  auto r = parse_ollama_request(Json::parse(body), e, kVocab);
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

void expect_error(std::string_view body, const std::string& param, const std::string& fragment,
                  OllamaEndpoint e = OllamaEndpoint::kGenerate) {
  const ApiError err = parse_error(body, e);
  EXPECT_EQ(err.status, 400) << body;
  EXPECT_EQ(err.param, param) << body << ": " << err.message;
  EXPECT_NE(err.message.find(fragment), std::string::npos) << body << ": " << err.message;
}

TEST(Ollama, GenerateGoesThroughTheChatTemplateWithOllamasDefaults) {
  const OllamaRequest r = parse_ok(R"({"model":"m:latest","prompt":"Once","system":"Tell stories."})");
  EXPECT_EQ(r.completion.endpoint, Endpoint::kChat);
  ASSERT_EQ(r.completion.messages.size(), 2u);
  EXPECT_EQ(r.completion.messages[0]["role"], "system");
  EXPECT_EQ(r.completion.messages[0]["content"], "Tell stories.");
  EXPECT_EQ(r.completion.messages[1]["role"], "user");
  EXPECT_EQ(r.completion.messages[1]["content"], "Once");
  EXPECT_EQ(r.completion.model, "m:latest");
  EXPECT_TRUE(r.completion.stream);  // Ollama streams unless told not to
  EXPECT_FALSE(r.load_only);
  // api.DefaultOptions: temperature 0.8, top_k 40, top_p 0.9, no min_p, repeat_last_n 64, no
  // penalty, a random seed, no length limit.
  const sample::SamplingParams& s = r.completion.sampling;
  EXPECT_FLOAT_EQ(s.temperature, 0.8f);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_FLOAT_EQ(s.min_p, 0.0f);
  EXPECT_EQ(s.repeat_last_n, 64);
  EXPECT_FLOAT_EQ(s.repeat_penalty, 1.0f);
  EXPECT_FALSE(r.completion.seeded);
  EXPECT_EQ(r.completion.max_tokens, -1);
  EXPECT_TRUE(r.completion.grammar.empty());
}

TEST(Ollama, OptionsBecomeTheSamplingOfTheRequest) {
  const OllamaRequest r = parse_ok(R"({"model":"m","prompt":"x","stream":false,"keep_alive":"5m","options":{
    "num_predict":7,"temperature":0.25,"top_k":3,"top_p":0.5,"min_p":0.1,"typical_p":0.7,"seed":42,
    "stop":["a","b","c","d","e"],"repeat_penalty":1.3,"repeat_last_n":-1,"presence_penalty":0.5,
    "frequency_penalty":-0.5,"num_ctx":128,"num_gpu":99,"num_thread":8,"mirostat":0,"tfs_z":1,"num_keep":4,
    "penalize_newline":true,"mirostat_eta":null}})");
  const sample::SamplingParams& s = r.completion.sampling;
  EXPECT_FALSE(r.completion.stream);
  EXPECT_EQ(r.completion.max_tokens, 7);
  EXPECT_FLOAT_EQ(s.temperature, 0.25f);
  EXPECT_EQ(s.top_k, 3);
  EXPECT_FLOAT_EQ(s.top_p, 0.5f);
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_FLOAT_EQ(s.typical_p, 0.7f);
  EXPECT_TRUE(r.completion.seeded);
  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(r.completion.stop, (std::vector<std::string>{"a", "b", "c", "d", "e"}));  // no limit of 4
  EXPECT_FLOAT_EQ(s.repeat_penalty, 1.3f);
  EXPECT_EQ(s.repeat_last_n, -1);
  EXPECT_FLOAT_EQ(s.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -0.5f);
  EXPECT_EQ(r.num_ctx, 128);
}

TEST(Ollama, OptionsWithOllamasSpecialValues) {
  // num_predict -1, -2 and 0: until the context is full; seed -1: random; top_k beyond the
  // vocabulary or below 1: no cut; a float with an integral value is an integer.
  for (const char* n : {"-1", "-2", "0"}) {
    EXPECT_EQ(parse_ok(fmt::format(R"({{"model":"m","prompt":"x","options":{{"num_predict":{}}}}})", n)).completion.max_tokens, -1);
  }
  EXPECT_FALSE(parse_ok(R"({"model":"m","prompt":"x","options":{"seed":-1}})").completion.seeded);
  EXPECT_EQ(parse_ok(R"({"model":"m","prompt":"x","options":{"top_k":100000}})").completion.sampling.top_k, kVocab);
  EXPECT_EQ(parse_ok(R"({"model":"m","prompt":"x","options":{"top_k":-1}})").completion.sampling.top_k, 0);
  EXPECT_EQ(parse_ok(R"({"model":"m","prompt":"x","options":{"num_predict":5.0}})").completion.max_tokens, 5);
  EXPECT_EQ(parse_ok(R"({"model":"m","prompt":"x","options":{"stop":"\n"}})").completion.stop,
            (std::vector<std::string>{"\n"}));
}

TEST(Ollama, OptionsOwlCannotHonourAreRefused) {
  expect_error(R"({"model":"m","prompt":"x","options":{"mirostat":2}})", "options.mirostat", "mirostat");
  expect_error(R"({"model":"m","prompt":"x","options":{"tfs_z":0.9}})", "options.tfs_z", "tail-free");
  expect_error(R"({"model":"m","prompt":"x","options":{"top_a":0.1}})", "options.top_a", "not an option");
  expect_error(R"({"model":"m","prompt":"x","options":[1]})", "options", "object");
  expect_error(R"({"model":"m","prompt":"x","options":{"num_predict":"ten"}})", "options.num_predict", "integer");
  expect_error(R"({"model":"m","prompt":"x","options":{"num_ctx":-5}})", "options.num_ctx", "-5");
  expect_error(R"({"model":"m","prompt":"x","options":{"repeat_last_n":-2}})", "options.repeat_last_n", "-2");
  expect_error(R"({"model":"m","prompt":"x","options":{"stop":[1]}})", "options.stop", "strings");
}

TEST(Ollama, ErrorsOfTheSharedValidationNameOllamasFields) {
  expect_error(R"({"model":"m","prompt":"x","options":{"temperature":"hot"}})", "options.temperature",
               "'options.temperature' must be a number");
  expect_error(R"({"model":"m","prompt":"x","options":{"temperature":3}})", "options.temperature", "outside [0, 2]");
  expect_error(R"({"model":"m","prompt":"x","options":{"top_p":1.5}})", "options.top_p", "'options.top_p'");
  expect_error(R"({"model":"m","prompt":"x","options":{"repeat_penalty":0}})", "options.repeat_penalty", "repeat_penalty");
  expect_error(R"({"model":"m","messages":[{"role":"bot","content":"x"}]})", "messages[0].role", "bot",
               OllamaEndpoint::kChat);
}

TEST(Ollama, FormatIsOpenAIsResponseFormat) {
  // "json" and a schema take the response_format path of the OpenAI endpoints: the request gets
  // its grammar there, or that path's refusal, named as `format`.
  for (const char* format : {R"("json")", R"({"type":"object","properties":{"age":{"type":"integer"}},"required":["age"]})"}) {
    auto r = parse_ollama_request(Json::parse(fmt::format(R"({{"model":"m","prompt":"x","format":{}}})", format)),
                                  OllamaEndpoint::kGenerate, kVocab);
    if (auto* e = std::get_if<ApiError>(&r)) {
      EXPECT_EQ(e->status, 400);
      EXPECT_EQ(e->param, "format") << e->message;
      EXPECT_NE(e->message.find("'format'"), std::string::npos) << e->message;
    } else {
      EXPECT_FALSE(std::get<OllamaRequest>(r).completion.grammar.empty()) << format;
    }
  }
  expect_error(R"({"model":"m","prompt":"x","format":{"type":"array","uniqueItems":true}})", "format", "uniqueItems");
  expect_error(R"({"model":"m","prompt":"x","format":"xml"})", "format", "\"json\" or a JSON Schema");
  expect_error(R"({"model":"m","prompt":"x","format":3})", "format", "JSON Schema");
  EXPECT_TRUE(parse_ok(R"({"model":"m","prompt":"x","format":""})").completion.grammar.empty());
}

TEST(Ollama, RawPromptsSkipTheTemplate) {
  const OllamaRequest r = parse_ok(R"({"model":"m","prompt":"[INST] hi [/INST]","raw":true})");
  EXPECT_EQ(r.completion.endpoint, Endpoint::kCompletion);
  EXPECT_EQ(r.completion.prompt_text, "[INST] hi [/INST]");
  expect_error(R"({"model":"m","prompt":"x","raw":true,"system":"s"})", "system", "raw mode");
}

TEST(Ollama, ToolsAndToolCallsBecomeOpenAIs) {
  auto parsed = parse_ollama_request(Json::parse(R"({"model":"m","messages":[
      {"role":"user","content":"Weather in Paris?"},
      {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},
      {"role":"tool","content":"18 C","tool_name":"get_weather"}],
      "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]})"),
                                     OllamaEndpoint::kChat, 512);
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(parsed)) << std::get<ApiError>(parsed).message;
  const router::CompletionRequest& r = std::get<OllamaRequest>(parsed).completion;
  EXPECT_TRUE(r.tools_active());
  EXPECT_EQ(r.tools[0]["function"]["name"], "get_weather");
  // The template gets the arguments as an object, whichever form the client sent.
  EXPECT_EQ(r.messages[1]["tool_calls"][0]["function"]["arguments"], Json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(r.messages[2]["tool_name"], "get_weather");
}

TEST(Ollama, WhatOwlCannotDoIsRefusedNotDropped) {
  expect_error(R"({"model":"m","prompt":"x","images":["aGk="]})", "images", "text models");
  expect_error(R"({"model":"m","prompt":"x","suffix":"return y"})", "suffix", "fill-in-the-middle");
  expect_error(R"({"model":"m","prompt":"x","template":"{{ .Prompt }}"})", "template", "Go templates");
  expect_error(R"({"model":"m","prompt":"x","context":[1,2,3]})", "context", "/api/chat");
  expect_error(R"({"model":"m","prompt":"x","think":true})", "think", "thinking");
  expect_error(R"({"model":"m","prompt":"x","think":"high"})", "think", "thinking");
  expect_error(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", "tools[0]",
               "function", OllamaEndpoint::kChat);
  expect_error(R"({"model":"m","prompt":"x","tools":[{"type":"function","function":{"name":"f"}}]})", "tools", "/api/chat");
  expect_error(R"({"model":"m","messages":[{"role":"user","content":"x","images":["aGk="]}]})", "messages[0].images",
               "text models", OllamaEndpoint::kChat);
  expect_error(R"({"model":"m","messages":[{"role":"assistant","content":"","tool_calls":[{}]}]})",
               "messages[0].tool_calls[0]", "function.name", OllamaEndpoint::kChat);
  expect_error(R"({"model":"m","prompt":"x","keep_alive":[]})", "keep_alive", "duration");
  expect_error(R"({"model":"m","prompt":"x","stream":"yes"})", "stream", "boolean");
  expect_error(R"({"model":"m","prompt":7})", "prompt", "string");
  // Their empty or false forms are what Ollama does by default: accepted.
  parse_ok(R"({"model":"m","prompt":"x","images":[],"suffix":"","template":"","context":[],"think":false,
               "truncate":true,"shift":true,"keep_alive":0})");
}

TEST(Ollama, NothingToRunLoadsTheModel) {
  EXPECT_TRUE(parse_ok(R"({"model":"m"})").load_only);
  EXPECT_TRUE(parse_ok(R"({"model":"m","prompt":"","keep_alive":0})").load_only);
  EXPECT_TRUE(parse_ok(R"({"model":"m","messages":[]})", OllamaEndpoint::kChat).load_only);
  EXPECT_TRUE(parse_ok(R"({"model":"m"})", OllamaEndpoint::kChat).load_only);
  // null is absent, as Ollama reads it
  const OllamaRequest nulls = parse_ok(R"({"model":"m","prompt":"x","stream":null,"raw":null,"format":null,
                                          "options":null,"system":null,"logprobs":null})");
  EXPECT_TRUE(nulls.completion.stream);
  EXPECT_EQ(nulls.completion.endpoint, Endpoint::kChat);
  const Json load = make_ollama_load(OllamaEndpoint::kChat, "m:latest");
  EXPECT_EQ(load["done"], true);
  EXPECT_EQ(load["done_reason"], "load");
  EXPECT_EQ(load["message"]["content"], "");
}

TEST(Ollama, ChatMessagesAndLogprobs) {
  const OllamaRequest r = parse_ok(R"({"model":"m","messages":[{"role":"system","content":"s"},
    {"role":"user","content":"u","images":[]},{"role":"assistant","content":"a"},{"role":"user"}],
    "logprobs":true,"top_logprobs":3})", OllamaEndpoint::kChat);
  ASSERT_EQ(r.completion.messages.size(), 4u);
  EXPECT_EQ(r.completion.messages[2]["content"], "a");
  EXPECT_EQ(r.completion.messages[3]["content"], "");
  EXPECT_FALSE(r.completion.messages[1].contains("images"));
  EXPECT_TRUE(r.completion.logprobs);
  EXPECT_EQ(r.completion.sampling.n_probs, 3);
  const OllamaRequest raw = parse_ok(R"({"model":"m","prompt":"x","raw":true,"logprobs":true,"top_logprobs":2})");
  EXPECT_TRUE(raw.completion.logprobs);
  EXPECT_EQ(raw.completion.sampling.n_probs, 2);
  expect_error(R"({"model":"m","prompt":"x","logprobs":true,"top_logprobs":21})", "top_logprobs", "[0, 20]");
  expect_error(R"({"model":"m","prompt":"x","top_logprobs":2})", "top_logprobs", "logprobs");
  expect_error(R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content", "string",
               OllamaEndpoint::kChat);
  expect_error(R"({"model":"m","messages":{"role":"user"}})", "messages", "array", OllamaEndpoint::kChat);
}

TEST(Ollama, AnswerLines) {
  OllamaRequest req = parse_ok(R"({"model":"m","prompt":"x"})");
  const tokenizer::Tokenizer& tok = *owl::testing::stories().tokenizer;
  const Json chunk = make_ollama_chunk(req, "m:latest", "Once", nullptr, &tok);
  EXPECT_EQ(chunk["model"], "m:latest");
  EXPECT_EQ(chunk["response"], "Once");
  EXPECT_EQ(chunk["done"], false);
  EXPECT_FALSE(chunk.contains("message"));
  ASSERT_TRUE(chunk["created_at"].is_string());
  EXPECT_EQ(chunk["created_at"].get<std::string>().size(), std::string("2024-01-01T00:00:00.000000Z").size());

  const auto t0 = engine::Clock::now();
  ChoiceResult result{.text = "Once upon", .finish = engine::FinishReason::kLength, .ended = true};
  result.stats = {.n_prompt = 9, .n_cached = 2, .n_generated = 4, .t_admitted = t0 + std::chrono::milliseconds(3),
                  .t_first_token = t0 + std::chrono::milliseconds(10), .t_end = t0 + std::chrono::milliseconds(50)};
  const OllamaTimes times{.arrival = t0, .submitted = t0 + std::chrono::milliseconds(1)};
  const Json done = make_ollama_done(req, "m:latest", result, false, times, &tok);
  EXPECT_EQ(done["done"], true);
  EXPECT_EQ(done["done_reason"], "length");
  EXPECT_EQ(done["response"], "");  // streamed: the text came in the lines before
  EXPECT_EQ(done["total_duration"], 50000000);
  EXPECT_EQ(done["load_duration"], 1000000);
  EXPECT_EQ(done["prompt_eval_count"], 9);
  EXPECT_EQ(done["prompt_eval_duration"], 7000000);
  EXPECT_EQ(done["eval_count"], 4);
  EXPECT_EQ(done["eval_duration"], 40000000);
  result.finish = engine::FinishReason::kStop;
  req.endpoint = OllamaEndpoint::kChat;
  const Json whole = make_ollama_done(req, "m:latest", result, true, times, &tok);
  EXPECT_EQ(whole["done_reason"], "stop");
  EXPECT_EQ(whole["message"]["role"], "assistant");
  EXPECT_EQ(whole["message"]["content"], "Once upon");
  EXPECT_EQ(ollama_error_json(ApiError{.message = "no"}), (Json{{"error", "no"}}));
}

TEST(Ollama, TimesAndNames) {
  EXPECT_EQ(rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(86401500))),
            "1970-01-02T00:00:01.500000Z");
  EXPECT_EQ(ollama_name("stories260K"), "stories260K:latest");
  EXPECT_EQ(ollama_name("llama3:8b"), "llama3:8b");
  EXPECT_EQ(ollama_name("host:5000/owl/model"), "host:5000/owl/model:latest");
  EXPECT_EQ(ollama_model_name(Json{{"name", "a"}}), "a");
  EXPECT_EQ(ollama_model_name(Json{{"model", "b"}, {"name", "a"}}), "b");
  EXPECT_EQ(ollama_model_name(Json{{"model", 3}}), "");
}

std::variant<OllamaEmbedRequest, ApiError> embed(const std::string& body, bool legacy = false) {
  return parse_ollama_embed_request(Json::parse(body), legacy);
}

TEST(Ollama, EmbedBodies) {
  auto one = std::get<OllamaEmbedRequest>(embed(R"({"model":"m","input":"hello"})"));
  EXPECT_EQ(one.embedding.texts, (std::vector<std::string>{"hello"}));
  EXPECT_TRUE(one.truncate);
  auto many = std::get<OllamaEmbedRequest>(embed(R"({"model":"m","input":["a","b"],"truncate":false,"dimensions":8,
                                                   "options":{"num_ctx":64},"keep_alive":-1})"));
  EXPECT_EQ(many.embedding.size(), 2u);
  EXPECT_FALSE(many.truncate);
  EXPECT_EQ(many.embedding.dimensions, 8);
  EXPECT_EQ(many.num_ctx, 64);
  EXPECT_EQ(std::get<OllamaEmbedRequest>(embed(R"({"model":"m","input":""})")).embedding.size(), 0u);
  EXPECT_EQ(std::get<OllamaEmbedRequest>(embed(R"({"model":"m"})")).embedding.size(), 0u);
  EXPECT_EQ(std::get<OllamaEmbedRequest>(embed(R"({"model":"m","prompt":"p"})", true)).embedding.texts.size(), 1u);
  EXPECT_EQ(std::get<ApiError>(embed(R"({"model":"m","input":[1,2]})")).param, "input");
  EXPECT_EQ(std::get<ApiError>(embed(R"({"model":"m","input":["a",""]})")).param, "input");
  EXPECT_EQ(std::get<ApiError>(embed(R"({"model":"m","prompt":["a"]})", true)).param, "prompt");
  EXPECT_EQ(std::get<ApiError>(embed(R"({"model":"m","input":"a","truncate":"no"})")).param, "truncate");
  EXPECT_EQ(std::get<ApiError>(embed(R"({"model":"m","input":"a","dimensions":0})")).param, "dimensions");
  EXPECT_EQ(std::get<ApiError>(embed(R"({"model":"m","input":"a","options":{"mirostat":1}})")).param, "options.mirostat");
}

TEST(Ollama, ModelsServedElsewhereHaveNoDetails) {
  const router::ModelInfo remote{.id = "upstream", .created = 0};
  const Json tags = ollama_tags_entry(remote);
  EXPECT_EQ(tags["name"], "upstream:latest");
  EXPECT_EQ(tags["model"], "upstream:latest");
  EXPECT_EQ(tags["size"], 0);
  EXPECT_EQ(tags["modified_at"], "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(tags["details"]["format"], "");
  const Json show = ollama_show(remote, false);
  EXPECT_TRUE(show["model_info"].empty());
}

}  // namespace
}  // namespace owl::serve
