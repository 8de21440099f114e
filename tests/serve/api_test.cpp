// Request parsing and response shapes, without a server.
#include "serve/api.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "template/chat.h"

namespace owl::serve {
namespace {

constexpr int64_t kVocab = 512;

CompletionRequest parse_ok(std::string_view body, Endpoint e = Endpoint::kChat) {
  auto r = parse_completion_request(body, e, kVocab);
  if (auto* err = std::get_if<ApiError>(&r)) ADD_FAILURE() << err->message;
  return std::holds_alternative<CompletionRequest>(r) ? std::get<CompletionRequest>(r) : CompletionRequest{};
}

ApiError parse_error(std::string_view body, Endpoint e = Endpoint::kChat) {
  auto r = parse_completion_request(body, e, kVocab);
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

TEST(Api, ChatRequestWithEveryParameter) {
  const CompletionRequest r = parse_ok(R"({"model":"m","messages":[{"role":"developer","content":"be brief"},
    {"role":"user","content":[{"type":"text","text":"he"},{"type":"text","text":"llo"}]}],
    "temperature":0.5,"top_p":0.9,"max_completion_tokens":7,"stop":["a","b"],"seed":-3,"n":2,
    "presence_penalty":0.5,"frequency_penalty":-0.5,"logit_bias":{"13":-100,"7":2.5},"logprobs":true,
    "top_logprobs":3,"user":"u1","stream":true,"stream_options":{"include_usage":true}})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "hello");
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.seeded);
  EXPECT_EQ(r.sampling.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(r.n, 2);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -0.5f);
  ASSERT_EQ(r.sampling.logit_bias.size(), 2u);
  EXPECT_TRUE(r.logprobs);
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.n_probs, 3);
  EXPECT_EQ(r.user, "u1");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(Api, OpenAIDefaultsTurnOffTheCliSamplers) {
  const CompletionRequest r = parse_ok(R"({"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_FALSE(r.seeded);
  EXPECT_FALSE(r.sampling.logprobs);
  EXPECT_EQ(r.n, 1);
}

TEST(Api, CompletionPromptForms) {
  EXPECT_EQ(parse_ok(R"({"prompt":"Once"})", Endpoint::kCompletion).prompt_text, "Once");
  EXPECT_EQ(parse_ok(R"({"prompt":["Once"]})", Endpoint::kCompletion).prompt_text, "Once");
  EXPECT_EQ(parse_ok(R"({"prompt":[1,2,3]})", Endpoint::kCompletion).prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  const CompletionRequest r = parse_ok(R"({"prompt":"x","logprobs":2})", Endpoint::kCompletion);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.sampling.n_probs, 2);
  EXPECT_EQ(parse_error(R"({"prompt":[1,512]})", Endpoint::kCompletion).param, "prompt");
  EXPECT_EQ(parse_error(R"({"prompt":{"a":1}})", Endpoint::kCompletion).param, "prompt");
  EXPECT_EQ(parse_error(R"({})", Endpoint::kCompletion).param, "prompt");
  const CompletionRequest echo = parse_ok(R"({"prompt":"x","echo":true,"logprobs":1,"max_tokens":0})", Endpoint::kCompletion);
  EXPECT_TRUE(echo.echo);
  EXPECT_EQ(echo.prompt_logprobs_from, 1);
  EXPECT_EQ(echo.max_tokens, 0);
  EXPECT_EQ(parse_error(R"({"prompt":"x","echo":true,"stream":true})", Endpoint::kCompletion).param, "echo");
  EXPECT_EQ(parse_error(R"({"prompt":"x","max_tokens":0})", Endpoint::kCompletion).param, "max_tokens");
}

TEST(Api, ErrorsNameTheParameterAndTheValue) {
  EXPECT_NE(parse_error("{not json").message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error("[1]").message.find("JSON object"), std::string::npos);
  // A number beyond double is a JSON error too (found by fuzz_request), not an exception.
  EXPECT_NE(parse_error(R"({"model":5e1111111111111})").message.find("not valid JSON"), std::string::npos);
  ApiError e = parse_error(R"({"messages":[{"role":"user","content":"hi"}],"temperature":"hot"})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "temperature");
  EXPECT_NE(e.message.find("string"), std::string::npos);
  e = parse_error(R"({"messages":[{"role":"user","content":"hi"}],"temperature":3})");
  EXPECT_NE(e.message.find("3"), std::string::npos);
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":1.5})").param, "max_tokens");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":0})").param, "max_tokens");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"n":9})").param, "n");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"stop":[1]})").param, "stop");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]})").param, "stop");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"logit_bias":{"x":1}})").param, "logit_bias");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"logit_bias":{"5":101}})").param, "logit_bias");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"top_logprobs":2})").param, "top_logprobs");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"stream":"yes"})").param, "stream");
  EXPECT_EQ(parse_error(R"({"messages":"hi"})").param, "messages");
  EXPECT_EQ(parse_error(R"({"messages":[]})").param, "messages");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"wizard","content":"hi"}]})").param, "messages[0].role");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})").param, "messages[0].content");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"model":5})").param, "model");
  // What the sampler refuses, the API refuses first (a 400, never a failed generation).
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"typical_p":0})").param, "typical_p");
  EXPECT_EQ(parse_error(R"({"messages":[{"role":"user","content":"hi"}],"repeat_penalty":0})").param, "repeat_penalty");
}

TEST(Api, EveryAcceptedRequestPassesTheSamplersChecks) {
  for (const char* extra : {R"("temperature":0)", R"("temperature":2)", R"("top_p":0)", R"("typical_p":1)",
                            R"("min_p":1)", R"("repeat_penalty":10)", R"("presence_penalty":-2)", R"("top_k":512)"}) {
    const std::string body = std::string(R"({"messages":[{"role":"user","content":"hi"}],)") + extra + "}";
    auto r = parse_completion_request(std::string_view(body), Endpoint::kChat, 512);
    ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r)) << extra;
    EXPECT_TRUE(sample::validate(std::get<CompletionRequest>(r).sampling, 512).ok()) << extra;
  }
}

TEST(Api, ResponseFormatBecomesAGrammar) {
  const char* chat = R"({"messages":[{"role":"user","content":"hi"}],)";
  EXPECT_TRUE(parse_ok(std::string(chat) + R"("response_format":{"type":"text"}})").grammar.empty());
  EXPECT_FALSE(parse_ok(std::string(chat) + R"("response_format":{"type":"json_object"}})").grammar.empty());
  const CompletionRequest schema = parse_ok(std::string(chat) +
      R"("response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}})");
  EXPECT_NE(schema.grammar.find("root ::="), std::string::npos);
  EXPECT_FALSE(parse_ok(std::string(chat) + R"("json_schema":{"type":"string"}})").grammar.empty());
  EXPECT_EQ(parse_ok(std::string(chat) + R"("grammar":"root ::= \"yes\" | \"no\""})").grammar,
            "root ::= \"yes\" | \"no\"");
}

TEST(Api, ConstraintsItCannotEnforceAreRefusedWithTheirPointer) {
  const std::string chat = R"({"messages":[{"role":"user","content":"hi"}],)";
  ApiError e = parse_error(chat + R"("response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"not":{"type":"string"}}}}}}})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "response_format.json_schema.schema");
  EXPECT_NE(e.message.find("'not'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("/properties/a/not"), std::string::npos) << e.message;
  e = parse_error(chat + R"("response_format":{"type":"json_schema","json_schema":{"name":"x"}}})");
  EXPECT_EQ(e.param, "response_format.json_schema.schema");
  e = parse_error(chat + R"("response_format":{"type":"xml"}})");
  EXPECT_EQ(e.param, "response_format");
  e = parse_error(chat + R"("grammar":"root ::= undefined-rule"})");
  EXPECT_EQ(e.param, "grammar");
  EXPECT_NE(e.message.find("undefined-rule"), std::string::npos) << e.message;
  e = parse_error(chat + R"("grammar":"root ::= \"a\"","json_schema":{"type":"string"}})");
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("send one"), std::string::npos) << e.message;
}

TEST(Api, ErrorJsonHasOpenAIsShape) {
  const Json j = error_json(ApiError{.status = 400, .message = "m", .param = "p"});
  EXPECT_EQ(j["error"]["message"], "m");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "p");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST(Api, DumpReplacesInvalidUtf8) {
  const std::string s = dump_json(Json{{"t", std::string("a\xff")}});
  EXPECT_NE(s.find("a\xef\xbf\xbd"), std::string::npos);
}

}  // namespace
}  // namespace owl::serve

namespace owl::serve {
namespace {

TEST(Api, ToolsAreValidatedAndToolCallsRenderThroughTheTemplate) {
  const std::string chat = R"({"messages":[{"role":"user","content":"hi"}],)";
  const std::string tools = R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])";
  CompletionRequest r = parse_ok(chat + tools + R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false})");
  EXPECT_EQ(r.tool_choice, router::ToolChoice::kNamed);
  EXPECT_EQ(r.tool_name, "get_weather");
  EXPECT_FALSE(r.parallel_tool_calls);
  EXPECT_TRUE(r.tools_active());
  EXPECT_FALSE(parse_ok(chat + tools + R"(,"tool_choice":"none"})").tools_active());
  const std::pair<std::string, std::string> errors[] = {
      {chat + R"("tools":[{"type":"function","function":{"name":"bad name"}}]})", "tools[0].function.name"},
      {chat + R"("tools":[{"type":"retrieval"}]})", "tools[0]"},
      {chat + tools + R"(,"tool_choice":{"type":"function","function":{"name":"other"}}})", "tool_choice"},
      {chat + tools + R"(,"tool_choice":"sometimes"})", "tool_choice"},
      {chat + R"("tool_choice":"auto"})", "tool_choice"},
      {chat + R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"not":{}}}}}}]})", "tools[0].function.parameters"},
      {chat + tools + R"(,"response_format":{"type":"json_object"}})", "tools"},
      {chat + tools + R"(,"logprobs":true})", "logprobs"},
      {chat + R"("functions":[{"name":"f"}]})", "functions"},
      {R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"not json"}}]}]})",
       "messages[1].tool_calls[0].function.arguments"},
  };
  for (const auto& [body, param] : errors) EXPECT_EQ(parse_error(body).param, param) << body;
  EXPECT_EQ(parse_error(R"({"prompt":"x",)" + tools + "}", Endpoint::kCompletion).param, "tools");

  // A round trip's second request: the assistant's call (arguments as OpenAI sends them, a JSON
  // string) and the tool's result, rendered by Qwen 2.5's template.
  r = parse_ok(R"({"messages":[{"role":"user","content":"Weather in Paris?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"18 C, sunny"}],)" + tools + "}");
  std::ifstream in(std::string(OWL_SHARED_DIR) + "/templates/Qwen-Qwen2.5-7B-Instruct.jinja");
  std::stringstream source;
  source << in.rdbuf();
  tmpl::ChatOptions options;
  options.add_generation_prompt = true;
  options.tools = r.tools;
  auto rendered = tmpl::render_chat(source.str(), r.messages, options);
  ASSERT_TRUE(rendered.ok()) << rendered.message();
  EXPECT_NE(rendered->find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"), std::string::npos) << *rendered;
  EXPECT_NE(rendered->find("<tool_response>\n18 C, sunny\n</tool_response>"), std::string::npos) << *rendered;
  EXPECT_NE(rendered->find("\"name\": \"get_weather\""), std::string::npos);  // the tools in the system prompt
}

}  // namespace
}  // namespace owl::serve
