// The HTTP server in-process on an ephemeral port, driven with httplib's client: the OpenAI
// endpoints, streaming, logprobs, every error class, cancellation, prefix reuse, metrics.
#include "serve/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "serve/api.h"
#include "model/forward.h"
#include "router/local_provider.h"
#include "serve/server_fixture.h"
#include "support/stories.h"
#include "template/chat.h"

namespace owl::serve {
namespace {

using namespace std::chrono_literals;

TEST_F(ServerTest, HealthIsReadyOnlyAfterTheModelIsSet) {
  delay_model = true;
  start();
  auto res = client->Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  auto chat = post("/v1/chat/completions", chat_body("hi"));
  EXPECT_EQ(chat->status, 503);
  EXPECT_EQ(chat->get_header_value("Retry-After"), "1");
  server->set_models(models);
  res = client->Get("/health");
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Json::parse(res->body)["status"], "ok");
  server->drain();
  EXPECT_EQ(client->Get("/health")->status, 503);
  EXPECT_EQ(post("/v1/chat/completions", chat_body("hi"))->status, 503);
}

TEST_F(ServerTest, ModelsAndThePage) {
  start();
  auto res = client->Get("/v1/models");
  ASSERT_EQ(res->status, 200);
  const Json j = Json::parse(res->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "stories260K");
  EXPECT_EQ(client->Get("/v1/models/stories260K")->status, 200);
  EXPECT_EQ(client->Get("/v1/models/gpt-4")->status, 404);
  res = client->Get("/");
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("<title>owl chat</title>"), std::string::npos);
  EXPECT_EQ(res->body, std::string(index_html()));
}

TEST_F(ServerTest, ChatCompletion) {
  start();
  auto res = post("/v1/chat/completions", chat_body("Tell me a story", 12));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json j = Json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "stories260K");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(j["choices"][0]["message"]["content"].is_string());
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  const std::string finish = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" || finish == "stop");
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 5);
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 12);
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
  // Greedy is deterministic, and n choices are all there.
  Json body = chat_body("Tell me a story", 12);
  body["n"] = 3;
  const Json again = Json::parse(post("/v1/chat/completions", body)->body);
  ASSERT_EQ(again["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(again["choices"][i]["index"], i);
    EXPECT_EQ(again["choices"][i]["message"]["content"], j["choices"][0]["message"]["content"]);
  }
}

// echo + logprobs + max_tokens 0 (lm-evaluation-harness's loglikelihood): the prompt's tokens
// with the log-probability of each after the first under the model, as a forward pass gives.
TEST_F(ServerTest, CompletionEchoGivesThePromptsLogprobs) {
  start();
  const std::string prompt = "Once upon a time there was a girl";
  auto res = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 0}, {"logprobs", 2}, {"echo", true}});
  ASSERT_EQ(res->status, 200) << res->body;
  const Json j = Json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["text"], prompt);
  const Json& lp = j["choices"][0]["logprobs"];
  const auto& st = owl::testing::stories();
  const std::vector<int32_t> ids = st.tokenizer->tokenize(prompt, {.add_special = true, .parse_special = true});
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  auto ctx = model::make_context(*st.model, {.n_ctx = 64, .n_seq = 1, .n_batch = 64, .n_threads = 2});
  ASSERT_TRUE(ctx.ok());
  model::Batch b;
  for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], static_cast<int32_t>(i), 0, true);
  const auto n_vocab = static_cast<size_t>(st.model->config.n_vocab);
  std::vector<float> logits(ids.size() * n_vocab);
  ASSERT_TRUE(model::forward(*st.model, b, **ctx, logits.data()).ok());
  for (size_t t = 1; t < ids.size(); ++t) {
    const float* row = logits.data() + (t - 1) * n_vocab;
    double mx = row[0], z = 0;
    for (size_t v = 0; v < n_vocab; ++v) mx = std::max(mx, static_cast<double>(row[v]));
    for (size_t v = 0; v < n_vocab; ++v) z += std::exp(row[v] - mx);
    EXPECT_NEAR(lp["token_logprobs"][t].get<double>(), row[ids[t]] - mx - std::log(z), 1e-4) << "token " << t;
    EXPECT_EQ(lp["top_logprobs"][t].size(), 2u);
  }
  EXPECT_EQ(j["usage"]["completion_tokens"], 0);
  // With generation after the prompt: the prompt's entries, then the answer's.
  res = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 3}, {"logprobs", 1}, {"echo", true}, {"temperature", 0},
                                 {"ignore_eos", true}});
  ASSERT_EQ(res->status, 200) << res->body;
  const Json k = Json::parse(res->body);
  EXPECT_EQ(k["choices"][0]["logprobs"]["tokens"].size(), ids.size() + 3);
  EXPECT_TRUE(k["choices"][0]["text"].get<std::string>().starts_with(prompt));
}

TEST_F(ServerTest, CompletionWithLogprobs) {
  start();
  auto res = post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 6}, {"logprobs", 3},
                                      {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(res->status, 200) << res->body;
  const Json j = Json::parse(res->body);
  EXPECT_EQ(j["object"], "text_completion");
  const Json& lp = j["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 6u);
  ASSERT_EQ(lp["token_logprobs"].size(), 6u);
  std::string joined;
  for (size_t i = 0; i < 6; ++i) {
    joined += lp["tokens"][i].get<std::string>();
    EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);
    EXPECT_EQ(lp["top_logprobs"][i].size(), 3u);
    // Greedy: the chosen token is the most likely one.
    double best = -1e9;
    for (const auto& [tok, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), best, 1e-6);
  }
  EXPECT_EQ(joined, j["choices"][0]["text"]);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

TEST_F(ServerTest, ChatLogprobs) {
  start();
  Json body = chat_body("Hello", 5);
  body["logprobs"] = true;
  body["top_logprobs"] = 2;
  body["ignore_eos"] = true;
  const Json j = Json::parse(post("/v1/chat/completions", body)->body);
  const Json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 5u);
  for (const Json& c : content) {
    EXPECT_TRUE(c["token"].is_string());
    EXPECT_LE(c["logprob"].get<double>(), 0.0);
    ASSERT_EQ(c["top_logprobs"].size(), 2u);
    EXPECT_GE(c["top_logprobs"][0]["logprob"].get<double>(), c["top_logprobs"][1]["logprob"].get<double>());
    EXPECT_EQ(c["bytes"].size(), c["token"].get<std::string>().size());
  }
}

TEST_F(ServerTest, StreamingChatIsWellFormed) {
  start();
  Json body = chat_body("Tell me a story", 10);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  body["ignore_eos"] = true;
  auto res = post("/v1/chat/completions", body);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const std::vector<std::string> events = sse_events(res->body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  const Json first = Json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  int finishes = 0;
  for (size_t i = 1; i + 2 < events.size(); ++i) {
    const Json c = Json::parse(events[i]);
    EXPECT_EQ(c["id"], first["id"]);
    EXPECT_TRUE(c["usage"].is_null());
    if (c["choices"][0]["finish_reason"].is_null()) {
      text += c["choices"][0]["delta"]["content"].get<std::string>();
    } else {
      ++finishes;
      EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
    }
  }
  EXPECT_EQ(finishes, 1);
  const Json usage = Json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 10);
  // The streamed text is the non-streamed text.
  body["stream"] = false;
  const Json whole = Json::parse(post("/v1/chat/completions", body)->body);
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
}

TEST_F(ServerTest, StreamingCompletion) {
  start();
  auto res = post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 5}, {"stream", true}});
  ASSERT_EQ(res->status, 200);
  const std::vector<std::string> events = sse_events(res->body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  const Json last = Json::parse(events[events.size() - 2]);
  EXPECT_EQ(last["object"], "text_completion");
  EXPECT_FALSE(last["choices"][0]["finish_reason"].is_null());
}

void expect_error(const httplib::Result& res, int status, const std::string& param, const std::string& fragment) {
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, status) << res->body;
  const Json j = Json::parse(res->body);
  ASSERT_TRUE(j.contains("error")) << res->body;
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_TRUE(j["error"]["type"].is_string());
  if (!param.empty()) {
    EXPECT_EQ(j["error"]["param"], param);
  }
  EXPECT_NE(j["error"]["message"].get<std::string>().find(fragment), std::string::npos) << j["error"]["message"];
}

TEST_F(ServerTest, ErrorsHaveOpenAIsShapeAndStatus) {
  start();
  expect_error(client->Post("/v1/chat/completions", "{\"messages\": [", "application/json"), 400, "", "not valid JSON");
  Json body = chat_body("hi");
  body["temperature"] = "hot";
  expect_error(post("/v1/chat/completions", body), 400, "temperature", "number");
  body = chat_body("hi");
  body["model"] = "gpt-4";
  auto res = post("/v1/chat/completions", body);
  expect_error(res, 404, "model", "gpt-4");
  EXPECT_EQ(Json::parse(res->body)["error"]["code"], "model_not_found");
  body = chat_body("hi");
  body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", "number"}, {"multipleOf", 2}}}}}};
  expect_error(post("/v1/chat/completions", body), 400, "response_format.json_schema.schema", "multipleOf");
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "the cat sat on the mat ";
  res = post("/v1/completions", {{"prompt", long_text}});
  expect_error(res, 400, "prompt", "256");
  const std::string message = Json::parse(res->body)["error"]["message"];
  const int n_prompt = static_cast<int>(owl::testing::stories().tokenizer->tokenize(long_text).size());
  EXPECT_NE(message.find(std::to_string(n_prompt)), std::string::npos) << message;
  expect_error(client->Get("/v1/nothing"), 404, "", "404");
  expect_error(client->Post("/tokenize", "[]", "application/json"), 400, "", "JSON object");
  expect_error(client->Post("/detokenize", R"({"tokens":[99999]})", "application/json"), 400, "tokens", "99999");
}

TEST_F(ServerTest, BodyOverTheLimitIs413) {
  start({.n_parallel = 1, .n_ctx = 128, .n_threads = 2}, {.max_body_bytes = 4096});
  std::string big(5000, 'a');
  auto res = post("/v1/completions", {{"prompt", big}});
  expect_error(res, 413, "", "larger");
  EXPECT_EQ(client->Get("/health")->status, 200);  // and the server goes on
}

TEST_F(ServerTest, FullServerAnswers429WithRetryAfter) {
  start({.n_parallel = 1, .n_ctx = 2048, .n_threads = 2, .max_queue = 0});
  std::atomic<bool> got_first{false}, release{false};
  std::thread holder([&] {
    httplib::Client c("127.0.0.1", port_);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = dump_json({{"prompt", "Once"}, {"max_tokens", 2000}, {"stream", true}, {"ignore_eos", true}});
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      got_first = true;
      return !release.load();  // hold the slot until the main thread is done
    };
    c.send(req);
  });
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (!got_first && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  if (!got_first) {
    release = true;
    holder.join();
    FAIL() << "the holding request got no token in time";
  }
  auto res = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 2}});
  expect_error(res, 429, "", "busy");
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  release = true;
  holder.join();
}

TEST_F(ServerTest, DisconnectCancelsTheRequest) {
  start({.n_parallel = 1, .n_ctx = 2048, .n_threads = 2});
  stream_then_hang_up(3);
  EXPECT_TRUE(engine->wait_idle(10s));
  std::string line;
  for (int i = 0; i < 100 && line.empty(); ++i) {
    {
      std::lock_guard<std::mutex> lock(log_mutex);
      if (!log_lines.empty()) line = log_lines.back();
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_FALSE(line.empty());
  const Json j = Json::parse(line);
  EXPECT_EQ(j["finish_reason"], "cancelled");
  EXPECT_LT(j["completion_tokens"].get<int>(), 2000);
  EXPECT_EQ(metric("owl_running_sequences"), 0);
  // The slot serves the next request.
  EXPECT_EQ(post("/v1/chat/completions", chat_body("hi", 3))->status, 200);
}

TEST_F(ServerTest, ConversationReusesItsPrefix) {
  start();
  Json body = chat_body("Tell me a story about a cat", 8);
  const Json first = Json::parse(post("/v1/chat/completions", body)->body);
  EXPECT_EQ(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  body["messages"].push_back({{"role", "assistant"}, {"content", first["choices"][0]["message"]["content"]}});
  body["messages"].push_back({{"role", "user"}, {"content", "And then?"}});
  const Json second = Json::parse(post("/v1/chat/completions", body)->body);
  EXPECT_GT(second["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), first["usage"]["prompt_tokens"].get<int>() - 2);
  EXPECT_GT(metric("owl_prompt_tokens_cached_total"), 0);
}

TEST_F(ServerTest, MetricsInPrometheusFormat) {
  start();
  post("/v1/chat/completions", chat_body("hi", 4));
  post("/v1/chat/completions", Json{{"messages", 1}});
  auto res = client->Get("/metrics");
  ASSERT_EQ(res->status, 200);
  const std::string& text = res->body;
  EXPECT_NE(text.find("owl_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("owl_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"} 1"), std::string::npos);
  for (const char* name : {"owl_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1", "owl_time_per_output_token_seconds_count",
                           "owl_request_duration_seconds_sum", "owl_queue_length 0", "owl_running_sequences 0",
                           "owl_kv_cache_usage_ratio", "owl_model_load_seconds", "owl_generated_tokens_total",
                           "owl_prompt_tokens_total"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  const std::regex line(R"((# (HELP|TYPE) .*|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+))");
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    ASSERT_NE(end, std::string::npos);
    const std::string l = text.substr(at, end - at);
    EXPECT_TRUE(std::regex_match(l, line)) << l;
    at = end + 1;
  }
}

TEST_F(ServerTest, TokenizeAndDetokenize) {
  start();
  auto res = client->Post("/tokenize", R"({"content":"Once upon a time"})", "application/json");
  ASSERT_EQ(res->status, 200);
  const Json tokens = Json::parse(res->body)["tokens"];
  EXPECT_EQ(tokens.get<std::vector<int32_t>>(), owl::testing::stories().tokenizer->tokenize("Once upon a time"));
  res = client->Post("/detokenize", dump_json({{"tokens", tokens}}), "application/json");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Json::parse(res->body)["content"], owl::testing::stories().tokenizer->detokenize(tokens.get<std::vector<int32_t>>()));
  res = client->Post("/tokenize", R"({"content":"Once upon a time","add_special":false,"with_pieces":true})", "application/json");
  const Json pieces = Json::parse(res->body)["tokens"];
  ASSERT_EQ(pieces.size() + 1, tokens.size());
  EXPECT_EQ(pieces[0]["id"], tokens[1]);
  Json ids = Json::array();
  for (const Json& p : pieces) ids.push_back(p["id"]);
  res = client->Post("/detokenize", dump_json({{"tokens", ids}}), "application/json");
  EXPECT_EQ(Json::parse(res->body)["content"], "Once upon a time");
}

TEST_F(ServerTest, RequestLogHasNoContentUnlessAsked) {
  start();
  post("/v1/chat/completions", chat_body("secret words", 4));
  std::string line;
  {
    std::lock_guard<std::mutex> lock(log_mutex);
    ASSERT_FALSE(log_lines.empty());
    line = log_lines.back();
  }
  const Json j = Json::parse(line);
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["model"], "stories260K");
  EXPECT_TRUE(j.contains("id") && j.contains("ttft_ms") && j.contains("duration_ms") && j.contains("prompt_tokens"));
  EXPECT_EQ(line.find("secret"), std::string::npos);
}

TEST_F(ServerTest, RequestLogWithContent) {
  start({.n_parallel = 1, .n_ctx = 128, .n_threads = 2}, {.log_content = true});
  post("/v1/chat/completions", chat_body("secret words", 4));
  std::lock_guard<std::mutex> lock(log_mutex);
  ASSERT_FALSE(log_lines.empty());
  EXPECT_NE(log_lines.back().find("secret words"), std::string::npos);
}

TEST_F(ServerTest, ConcurrentClientsAllSucceed) {
  start({.n_parallel = 4, .n_ctx = 256, .n_threads = 2, .step_tokens = 32});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port_);
      Json body = chat_body("Story number " + std::to_string(i), 16);
      body["stream"] = (i % 2) == 0;
      auto res = c.Post("/v1/chat/completions", dump_json(body), "application/json");
      if (res && res->status == 200) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 8);
}

// A guard that knows one key, refuses more than one choice, and records what was settled.
struct TestGuard : Guard {
  std::variant<Principal, ApiError> authenticate(const Caller& caller) override {
    if (caller.authorization == "Bearer good") return Principal{.name = "alice"};
    return ApiError{.status = 401, .message = "missing or wrong API key", .code = "invalid_api_key"};
  }
  std::optional<ApiError> admit(const Principal&, Work& work) override {
    if (work.n > 1) return ApiError{.status = 429, .message = "one choice at a time", .type = "requests", .retry_after_s = 2.5};
    return std::nullopt;
  }
  void settle(const Principal& who, const Work&, const Used& used) override {
    std::lock_guard<std::mutex> lock(mutex);
    settled.push_back({who.name, used.prompt_tokens + used.completion_tokens});
  }
  std::mutex mutex;
  std::vector<std::pair<std::string, int64_t>> settled;
};

TEST_F(ServerTest, TheGuardCoversEveryEndpointButHealth) {
  auto guard = std::make_shared<TestGuard>();
  start({.n_parallel = 2, .n_ctx = 256, .n_threads = 2}, ServerOptions{.guard = guard});
  EXPECT_EQ(client->Get("/health")->status, 200);
  EXPECT_EQ(client->Get("/")->status, 200);
  for (const char* path : {"/v1/models", "/v1/models/stories260K", "/metrics"}) {
    auto res = client->Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
    EXPECT_EQ(Json::parse(res->body)["error"]["code"], "invalid_api_key") << path;
  }
  for (const char* path : {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"}) {
    EXPECT_EQ(post(path, {{"prompt", "x"}})->status, 401) << path;
  }
  client->set_bearer_token_auth("good");
  EXPECT_EQ(client->Get("/v1/models")->status, 200);
  auto two = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 2}, {"n", 2}});
  ASSERT_TRUE(two);
  EXPECT_EQ(two->status, 429);
  EXPECT_EQ(two->get_header_value("Retry-After"), "3");
  auto one = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 3}, {"ignore_eos", true}});
  ASSERT_TRUE(one);
  ASSERT_EQ(one->status, 200) << one->body;
  const Json usage = Json::parse(one->body)["usage"];
  std::lock_guard<std::mutex> lock(guard->mutex);
  ASSERT_EQ(guard->settled.size(), 1u);
  EXPECT_EQ(guard->settled[0].first, "alice");
  EXPECT_EQ(guard->settled[0].second, usage["total_tokens"].get<int64_t>());
  std::lock_guard<std::mutex> log_lock(log_mutex);
  EXPECT_NE(log_lines.back().find("\"principal\":\"alice\""), std::string::npos) << log_lines.back();
}

TEST_F(ServerTest, SeveralModelsAreServedByTheirOwnEngines) {
  delay_model = true;
  start();
  auto second = engine::Engine::make(*owl::testing::stories().model, *owl::testing::stories().tokenizer, &metrics,
                                     {.n_parallel = 1, .n_ctx = 128, .n_threads = 2});
  ASSERT_TRUE(second.ok()) << second.message();
  ASSERT_TRUE(models->add(local_model("stories-b", **second)).ok());
  EXPECT_FALSE(models->add(local_model("stories-b", **second)).ok());
  EXPECT_FALSE(models->add(local_model("", **second)).ok());
  server->set_models(models);
  const Json list = Json::parse(client->Get("/v1/models")->body);
  ASSERT_EQ(list["data"].size(), 2u);
  EXPECT_EQ(list["data"][1]["id"], "stories-b");
  Json body = chat_body("Tell me a story", 6);
  const Json a = Json::parse(post("/v1/chat/completions", body)->body);
  body["model"] = "stories-b";
  auto res = post("/v1/chat/completions", body);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json b = Json::parse(res->body);
  EXPECT_EQ(b["model"], "stories-b");
  EXPECT_EQ(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"]);
  EXPECT_EQ(metric("owl_sequence_slots"), 3);  // both engines' slots
  body["model"] = "nope";
  res = post("/v1/chat/completions", body);
  EXPECT_EQ(res->status, 404);
  EXPECT_NE(res->body.find("this server serves 'stories260K', 'stories-b'"), std::string::npos) << res->body;
  server->stop();  // before the second engine goes
}

// A burst of new clients must not outrun the listen backlog: the kernel drops SYNs beyond it and
// the clients resend them only a second later. With nobody accepting yet (bound, not started),
// the kernel completes exactly as many handshakes as the backlog holds.
TEST(ServerListenTest, ABurstOfConnectionsFitsTheBacklog) {
  Metrics metrics;
  Server server(ServerOptions{.host = "127.0.0.1", .port = 0}, metrics);
  auto port = server.bind();
  ASSERT_TRUE(port.ok()) << port.message();
  constexpr int kClients = 64;
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < kClients; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);  // EINPROGRESS
  }
  int connected = 0;
  for (int fd : fds) {
    pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
    int error = -1;
    socklen_t len = sizeof error;
    if (::poll(&p, 1, 500) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0) ++connected;
    ::close(fd);
  }
  EXPECT_EQ(connected, kClients);
}

}  // namespace
}  // namespace owl::serve
