// The server under the conditions a deployment meets: stopped at any moment, a busy port, idle
// connections, answers cut by a shutdown, clients that vanish, browsers (CORS), wrong methods.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include "serve/server_fixture.h"

namespace owl::serve {
namespace {

using namespace std::chrono_literals;

int connect_idle(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(ServerLifeTest, StopIsSafeAtAnyMoment) {
  Metrics metrics;
  {
    Server never_bound(ServerOptions{.host = "127.0.0.1", .port = 0}, metrics);
    never_bound.stop();
  }
  {
    Server bound(ServerOptions{.host = "127.0.0.1", .port = 0}, metrics);
    ASSERT_TRUE(bound.bind().ok());
    bound.stop();
  }
  // A start-up that fails right after start(): the stop must not be lost (it once hung here).
  for (int i = 0; i < 20; ++i) {
    Server server(ServerOptions{.host = "127.0.0.1", .port = 0}, metrics);
    ASSERT_TRUE(server.bind().ok());
    server.start();
    server.stop();
    server.stop();
  }
}

TEST(ServerLifeTest, ASecondServerOnABusyPortFails) {
  Metrics metrics;
  Server first(ServerOptions{.host = "127.0.0.1", .port = 0}, metrics);
  auto port = first.bind();
  ASSERT_TRUE(port.ok()) << port.message();
  first.start();
  Server second(ServerOptions{.host = "127.0.0.1", .port = *port}, metrics);
  auto again = second.bind();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("address already in use"), std::string::npos) << again.message();
  first.stop();
}

TEST_F(ServerTest, IdleConnectionsDoNotStallOthers) {
  start({.n_parallel = 1, .n_ctx = 128, .n_threads = 2, .max_queue = 1});
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) {
    const int fd = connect_idle(port_);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  std::this_thread::sleep_for(200ms);  // every idle connection has been accepted and handed out
  // Well under the 5 s an idle connection may hold its thread: nobody waits behind them.
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(2, 0);
  c.set_connection_timeout(2, 0);
  auto res = c.Get("/health");
  ASSERT_TRUE(res) << "no answer while 100 connections sit idle";
  EXPECT_EQ(res->status, 200);
  auto chat = c.Post("/v1/chat/completions", dump_json(chat_body("hi", 2)), "application/json");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 200);
  for (int fd : idle) ::close(fd);
}

TEST_F(ServerTest, AnAnswerCutByTheShutdownSaysSo) {
  start({.n_parallel = 2, .n_ctx = 2048, .n_threads = 2});
  Json body = chat_body("Tell me a long story", 1500);
  body["ignore_eos"] = true;
  Json streamed = body;
  streamed["stream"] = true;
  httplib::Result plain{nullptr, httplib::Error::Unknown}, stream{nullptr, httplib::Error::Unknown};
  std::thread a([&] {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    plain = c.Post("/v1/chat/completions", dump_json(body), "application/json");
  });
  std::thread b([&] {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    stream = c.Post("/v1/chat/completions", dump_json(streamed), "application/json");
  });
  for (int i = 0; i < 500 && metric("owl_running_sequences") < 2; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(1200ms);  // past the heartbeat: the plain answer's 200 is sent
  server->drain();
  engine->stop(true);
  a.join();
  b.join();
  ASSERT_TRUE(plain && stream);
  // The plain answer: its status was sent already, so the body is an error, not a finished answer.
  const Json p = Json::parse(plain->body);
  ASSERT_TRUE(p.contains("error")) << plain->body;
  EXPECT_EQ(p["error"]["code"], "cancelled");
  // The stream: an error event, and no finish_reason at all.
  bool error_event = false;
  for (const std::string& event : sse_events(stream->body)) {
    if (event == "[DONE]") continue;
    const Json j = Json::parse(event);
    if (j.contains("error")) {
      error_event = true;
      EXPECT_EQ(j["error"]["code"], "cancelled");
      continue;
    }
    EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null()) << event;
  }
  EXPECT_TRUE(error_event) << stream->body;
  for (const Json& line : wait_log(2)) {
    EXPECT_EQ(line["finish_reason"], "cancelled") << line.dump();
    EXPECT_EQ(line["status"], 503) << line.dump();
    EXPECT_GT(line["completion_tokens"].get<int>(), 0) << line.dump();
  }
}

TEST_F(ServerTest, AVanishedClientIsLoggedWithItsUsage) {
  start({.n_parallel = 1, .n_ctx = 2048, .n_threads = 2});
  stream_then_hang_up(20);
  const std::vector<Json> log = wait_log(1);
  ASSERT_EQ(log.size(), 1u);
  const Json& j = log[0];
  EXPECT_EQ(j["finish_reason"], "cancelled");
  EXPECT_GT(j["prompt_tokens"].get<int>(), 5) << j.dump();
  // At least the tokens the client received, fewer than it asked for.
  EXPECT_GE(j["completion_tokens"].get<int>(), 10) << j.dump();
  EXPECT_LT(j["completion_tokens"].get<int>(), 2000) << j.dump();
  EXPECT_TRUE(j["ttft_ms"].is_number()) << j.dump();
}

TEST_F(ServerTest, StreamedLogprobsCarryTheirTextOffsets) {
  start();
  Json body = {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"logprobs", 2}, {"temperature", 0},
               {"ignore_eos", true}};
  const Json whole = Json::parse(post("/v1/completions", body)->body)["choices"][0]["logprobs"];
  body["stream"] = true;
  std::vector<size_t> offsets;
  for (const std::string& event : sse_events(post("/v1/completions", body)->body)) {
    if (event == "[DONE]") continue;
    const Json lp = Json::parse(event)["choices"][0]["logprobs"];
    if (lp.is_null()) continue;
    for (const Json& o : lp["text_offset"]) offsets.push_back(o.get<size_t>());
  }
  ASSERT_EQ(offsets.size(), 8u);
  EXPECT_EQ(Json(offsets), whole["text_offset"]);
  EXPECT_GT(offsets.back(), 0u);
}

TEST_F(ServerTest, AWrongMethodIs405AndUnknownPaths404) {
  start();
  auto get = client->Get("/v1/chat/completions");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");
  EXPECT_EQ(Json::parse(get->body)["error"]["code"], "method_not_allowed");
  auto post_models = client->Post("/v1/models", "{}", "application/json");
  EXPECT_EQ(post_models->status, 405);
  EXPECT_EQ(post_models->get_header_value("Allow"), "GET");
  EXPECT_EQ(client->Get("/v1/nothing")->status, 404);
  // No CORS headers unless asked for.
  EXPECT_FALSE(client->Get("/health")->has_header("Access-Control-Allow-Origin"));
}

TEST_F(ServerTest, CorsAnswersPreflightsAndMarksResponses) {
  start({.n_parallel = 1, .n_ctx = 128, .n_threads = 2}, {.cors_origin = "https://app.example"});
  auto preflight = client->Options("/v1/chat/completions");
  ASSERT_TRUE(preflight);
  EXPECT_EQ(preflight->status, 204);
  EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_NE(preflight->get_header_value("Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  auto chat = post("/v1/chat/completions", chat_body("hi", 2));
  EXPECT_EQ(chat->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
}

TEST_F(ServerTest, DefaultMaxTokensAndAnyModelName) {
  start({.n_parallel = 1, .n_ctx = 256, .n_threads = 2}, {.default_max_tokens = 5, .accept_any_model = true});
  Json body = chat_body("Tell me a story");
  body.erase("max_tokens");
  body["model"] = "gpt-4o";
  body["ignore_eos"] = true;
  auto res = post("/v1/chat/completions", body);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json j = Json::parse(res->body);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["model"], "stories260K");
}

TEST_F(ServerTest, ASystemMessageWorksWithTemplatesWithoutASystemRole) {
  for (const char* format : {"gemma", "mistral"}) {
    SCOPED_TRACE(format);
    chat_format = format;
    start();
    Json body = chat_body("Tell me a story", 4);
    body["messages"].insert(body["messages"].begin(), Json{{"role", "system"}, {"content", "You are kind."}});
    body["logprobs"] = false;
    auto res = post("/v1/chat/completions", body);
    EXPECT_EQ(res->status, 200) << res->body;
    server->stop();
    server.reset();
    engine.reset();
  }
}

}  // namespace
}  // namespace owl::serve
