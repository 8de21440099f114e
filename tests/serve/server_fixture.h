// The HTTP server in-process on an ephemeral port with the stories model, and an httplib client:
// the fixture of the server tests.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "engine/engine.h"
#include "router/local_provider.h"
#include "serve/api.h"
#include "serve/server.h"
#include "support/stories.h"
#include "template/chat.h"

namespace owl::serve {

class ServerTest : public ::testing::Test {
 protected:
  void start(engine::EngineOptions engine_options = {.n_parallel = 2, .n_ctx = 256, .n_threads = 2},
             ServerOptions options = {}) {
    const auto& s = owl::testing::stories();
    auto t = tmpl::Template::parse(*tmpl::builtin_format(chat_format));
    ASSERT_TRUE(t.ok());
    chat_template = std::make_unique<tmpl::Template>(std::move(*t));
    auto e = engine::Engine::make(*s.model, *s.tokenizer, &metrics, engine_options);
    ASSERT_TRUE(e.ok()) << e.message();
    engine = std::move(*e);
    options.host = "127.0.0.1";
    options.port = 0;
    options.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mutex);
      log_lines.push_back(line);
    };
    server = std::make_unique<Server>(options, metrics);
    auto port = server->bind();
    ASSERT_TRUE(port.ok()) << port.message();
    server->start();
    client = std::make_unique<httplib::Client>("127.0.0.1", *port);
    client->set_read_timeout(60, 0);
    port_ = *port;
    models = std::make_shared<ModelRegistry>();
    catalog = std::make_shared<router::AdapterCatalog>(*s.model, std::make_shared<router::AdapterIds>(0));
    ASSERT_TRUE(models->add(local_model("stories260K", *engine, catalog)).ok());
    if (!delay_model) server->set_models(models);
  }
  std::shared_ptr<router::Provider> local_model(const std::string& id, engine::Engine& e,
                                               std::shared_ptr<router::AdapterCatalog> adapters = nullptr) {
    const auto& s = owl::testing::stories();
    return std::make_shared<router::LocalProvider>(router::LocalModel{
        .id = id, .model = s.model.get(), .tokenizer = s.tokenizer.get(), .chat_template = chat_template.get(), .engine = &e,
        .catalog = std::move(adapters)});
  }
  void TearDown() override {
    if (server) server->stop();
  }

  httplib::Result post(const std::string& path, const Json& body) {
    return client->Post(path.c_str(), dump_json(body), "application/json");
  }
  Json chat_body(const std::string& text, int max_tokens = 16) {
    return {{"model", "stories260K"}, {"messages", {{{"role", "user"}, {"content", text}}}}, {"max_tokens", max_tokens},
            {"temperature", 0}};
  }
  // The `data:` payloads of an SSE response, checking the framing.
  std::vector<std::string> sse_events(const std::string& body) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at < body.size()) {
      const size_t end = body.find("\n\n", at);
      EXPECT_NE(end, std::string::npos) << "unterminated event";
      if (end == std::string::npos) break;
      const std::string event = body.substr(at, end - at);
      at = end + 2;
      if (event.rfind(":", 0) == 0) continue;  // comment
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      out.push_back(event.substr(6));
    }
    return out;
  }
  // Streams a long chat answer and hangs up after `n_chunks` chunks.
  void stream_then_hang_up(int n_chunks) {
    int chunks = 0;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    Json body = chat_body("Tell me a long story", 2000);
    body["stream"] = true;
    body["ignore_eos"] = true;
    req.body = dump_json(body);
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < n_chunks; };
    httplib::Client c("127.0.0.1", port_);
    c.send(req);  // the receiver's false closes the connection
  }
  // The request log's lines once it holds at least `n` (waiting up to 10 s for the last ones).
  std::vector<Json> wait_log(size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> lock(log_mutex);
        if (log_lines.size() >= n) {
          std::vector<Json> out;
          for (const std::string& line : log_lines) out.push_back(Json::parse(line));
          return out;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "the request log has fewer than " << n << " lines";
    return {};
  }
  double metric(const std::string& name) {
    auto res = client->Get("/metrics");
    if (!res) return -1;
    std::smatch m;
    if (std::regex_search(res->body, m, std::regex("\n" + name + " ([0-9.e+-]+)\n"))) return std::stod(m[1]);
    return -1;
  }

  Metrics metrics;
  std::unique_ptr<tmpl::Template> chat_template;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<Server> server;
  std::unique_ptr<httplib::Client> client;
  std::shared_ptr<ModelRegistry> models;
  std::shared_ptr<router::AdapterCatalog> catalog;  // the LoRA adapters of "stories260K", empty until a test loads some
  bool delay_model = false;
  std::string chat_format = "chatml";  // the built-in template start() serves with
  int port_ = 0;
  std::mutex log_mutex;
  std::vector<std::string> log_lines;
};

}  // namespace owl::serve
