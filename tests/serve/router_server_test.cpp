// Hosted upstreams and routes through a real gateway server on loopback: the upstream is a second
// owl server (the fixture's, serving the stories model) or a fault-injecting stand-in that
// answers with 500s, 429s, delays, cut streams, or is not there at all.
#include <atomic>
#include <deque>
#include <future>
#include <sstream>

#include "router/config.h"
#include "router/hosted_provider.h"
#include "router/route_provider.h"
#include "serve/server_fixture.h"
#include "support/tls_cert.h"

namespace owl::serve {
namespace {

// An OpenAI-compatible stand-in that answers each request with the next scripted behaviour
// (then "ok"), and records every body it received.
class FaultServer {
 public:
  // kSlow: 100 chunks 50 ms apart; kTools: a call of get_weather in three deltas; kLogprobs:
  // the answer with its tokens' log-probabilities.
  enum class Kind { kOk, kStatus, kDelay, kCut, kSlow, kTools, kLogprobs };
  struct Behaviour {
    Kind kind = Kind::kOk;
    int status = 200;
    int retry_after_s = 0;
    int delay_ms = 0;
  };

  // With `tls`, it serves https with that certificate.
  explicit FaultServer(const owl::testing::TlsFiles* tls = nullptr)
      : server_(tls ? std::make_unique<httplib::SSLServer>(tls->cert.c_str(), tls->key.c_str()) : std::make_unique<httplib::Server>()) {
    server_->Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FaultServer() {
    server_->stop();
    thread_.join();
  }
  void script(std::vector<Behaviour> b) {
    std::lock_guard<std::mutex> lock(mutex_);
    script_.assign(b.begin(), b.end());
  }
  int requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int>(bodies_.size());
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bodies_;
  }
  int port() const { return port_; }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    Behaviour b;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      bodies_.push_back(req.body);
      if (!script_.empty()) {
        b = script_.front();
        script_.pop_front();
      }
    }
    if (b.kind == Kind::kStatus) {
      res.status = b.status;
      if (b.retry_after_s > 0) res.set_header("Retry-After", std::to_string(b.retry_after_s));
      res.set_content(R"({"error":{"message":"scripted failure","type":"server_error"}})", "application/json");
      return;
    }
    if (b.kind == Kind::kDelay) std::this_thread::sleep_for(std::chrono::milliseconds(b.delay_ms));
    if (b.kind == Kind::kTools || b.kind == Kind::kLogprobs) {
      const bool tools = b.kind == Kind::kTools;
      res.set_chunked_content_provider("text/event-stream", [tools](size_t, httplib::DataSink& sink) {
        std::vector<std::string> chunks;
        if (tools) {
          chunks = {R"({"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_up1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]})",
                    R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]})",
                    R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]},"finish_reason":null}]})",
                    R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})"};
        } else {
          chunks = {R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})",
                    R"({"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":{"content":[{"token":"Hello","logprob":-0.25,"bytes":[72,101,108,108,111],"top_logprobs":[{"token":"Hello","logprob":-0.25,"bytes":null},{"token":"Hi","logprob":-1.5,"bytes":null}]}]},"finish_reason":null}]})",
                    R"({"choices":[{"index":0,"delta":{"content":" world"},"logprobs":{"content":[{"token":" world","logprob":-0.5,"bytes":null,"top_logprobs":[]}]},"finish_reason":null}]})",
                    R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"};
        }
        chunks.push_back(R"({"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}})");
        for (const std::string& c : chunks) {
          const std::string event = "data: " + c + "\n\n";
          sink.write(event.data(), event.size());
        }
        const std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      });
      return;
    }
    const bool cut = b.kind == Kind::kCut, slow = b.kind == Kind::kSlow;
    res.set_chunked_content_provider("text/event-stream", [cut, slow](size_t, httplib::DataSink& sink) {
      auto chunk = [&](const std::string& json) {
        const std::string s = "data: " + json + "\n\n";
        return sink.write(s.data(), s.size());
      };
      chunk(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})");
      chunk(R"({"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]})");
      for (int i = 0; slow && i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (!chunk(R"({"choices":[{"index":0,"delta":{"content":" and"},"finish_reason":null}]})")) return false;
      }
      if (cut) return false;  // the connection closes mid-answer
      chunk(R"({"choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}]})");
      chunk(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})");
      chunk(R"({"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}})");
      const std::string done = "data: [DONE]\n\n";
      sink.write(done.data(), done.size());
      sink.done();
      return true;
    });
  }

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::deque<Behaviour> script_;
  std::vector<std::string> bodies_;
};

using Fault = FaultServer::Behaviour;
using FaultKind = FaultServer::Kind;

// The fixture's server is the upstream; the gateway is a second server whose models are a local
// one ("small", private), the upstream ("big", hosted) and the fault server ("flaky", hosted).
class RouterTest : public ServerTest {
 protected:
  void SetUp() override {
    start();
    router::ModelSpec small{.name = "small", .is_private = true, .path = "stories260K.gguf"};
    router::ModelSpec big{.name = "big", .base_url = fmt::format("http://127.0.0.1:{}/v1", port_), .model = "stories260K",
                          .price = {.input_per_mtok = 1000, .output_per_mtok = 2000}, .timeout_s = 10};
    router::ModelSpec flaky{.name = "flaky", .base_url = fmt::format("http://127.0.0.1:{}/v1", fault.port()), .timeout_s = 1};
    specs = {small, big, flaky};
  }
  void TearDown() override {
    if (gateway) gateway->stop();
    ServerTest::TearDown();
  }
  std::shared_ptr<router::HostedProvider> hosted(const router::ModelSpec& spec, router::HostedOptions o = {.backoff = std::chrono::milliseconds(10)}) {
    return std::make_shared<router::HostedProvider>(spec, "test-key", 0, o);
  }
  // Starts the gateway with small, big and flaky, plus `routes`.
  void start_gateway(std::vector<router::RouteSpec> routes = {}, router::HostedOptions flaky_options = {.backoff = std::chrono::milliseconds(10)}) {
    // Local compute at 36 $ per core-hour on 2 cores.
    const auto& stories = owl::testing::stories();
    providers["small"] = std::make_shared<router::LocalProvider>(router::LocalModel{
        .id = "small", .model = stories.model.get(), .tokenizer = stories.tokenizer.get(), .chat_template = chat_template.get(),
        .engine = engine.get(), .usd_per_second = 2 * 36 / 3600.0});
    providers["big"] = hosted(specs[1]);
    providers["flaky"] = hosted(specs[2], flaky_options);
    gateway_models = std::make_shared<ModelRegistry>();
    for (const char* name : {"small", "big", "flaky"}) ASSERT_TRUE(gateway_models->add(providers[name]).ok());
    auto detector = router::SensitiveDetector::make({});
    ASSERT_TRUE(detector.ok()) << detector.message();
    auto shared_detector = std::make_shared<const router::SensitiveDetector>(std::move(*detector));
    auto member = [&](const std::string& name) {
      const router::ModelSpec* spec = nullptr;
      for (const auto& s : specs) if (s.name == name) spec = &s;
      return router::RouteMember{.provider = providers[name].get(), .spec = spec};
    };
    for (const router::RouteSpec& r : routes) {
      router::RouteSetup setup{.spec = r, .detector = shared_detector};
      for (const auto& step : r.cascade) setup.cascade.push_back(member(step.model));
      for (const auto& f : r.fallback) setup.fallback.push_back(member(f));
      for (const auto& rule : r.rules) setup.rules.push_back(member(rule.model));
      auto route = router::RouteProvider::make(std::move(setup), 0);
      ASSERT_TRUE(route.ok()) << route.message();
      ASSERT_TRUE(gateway_models->add(std::shared_ptr<router::Provider>(std::move(*route))).ok());
    }
    ServerOptions options{.host = "127.0.0.1", .port = 0, .log_content = true};
    options.redact = [shared_detector](std::string_view text) { return shared_detector->redact(text); };
    options.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mutex);
      gateway_log.push_back(Json::parse(line));
    };
    gateway = std::make_unique<Server>(options, gateway_metrics);
    auto port = gateway->bind();
    ASSERT_TRUE(port.ok()) << port.message();
    gateway->start();
    gateway->set_models(gateway_models);
    gw = std::make_unique<httplib::Client>("127.0.0.1", *port);
    gw->set_read_timeout(60, 0);
  }
  httplib::Result ask(const Json& body, const httplib::Headers& headers = {}) {
    return gw->Post("/v1/chat/completions", headers, dump_json(body), "application/json");
  }
  Json chat(const std::string& model, const std::string& text, int max_tokens = 12) {
    Json body = chat_body(text, max_tokens);
    body["model"] = model;
    return body;
  }
  Json last_gateway_log() {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard<std::mutex> lock(log_mutex);
        if (!gateway_log.empty()) return gateway_log.back();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return nullptr;
  }

  FaultServer fault;
  std::vector<router::ModelSpec> specs;
  std::map<std::string, std::shared_ptr<router::Provider>> providers;
  Metrics gateway_metrics;
  std::shared_ptr<ModelRegistry> gateway_models;
  std::unique_ptr<Server> gateway;
  std::unique_ptr<httplib::Client> gw;
  std::vector<Json> gateway_log;
};

TEST_F(RouterTest, AHostedModelAnswersAsTheUpstreamDoesStreamedOrNot) {
  start_gateway();
  auto direct = post("/v1/chat/completions", chat_body("Once upon a time", 12));
  ASSERT_TRUE(direct && direct->status == 200);
  const Json d = Json::parse(direct->body);
  auto relayed = ask(chat("big", "Once upon a time"));
  ASSERT_TRUE(relayed);
  ASSERT_EQ(relayed->status, 200) << relayed->body;
  const Json r = Json::parse(relayed->body);
  EXPECT_EQ(r["model"], "big");
  EXPECT_EQ(r["choices"][0]["message"]["content"], d["choices"][0]["message"]["content"]);
  EXPECT_EQ(r["choices"][0]["finish_reason"], d["choices"][0]["finish_reason"]);
  EXPECT_EQ(r["usage"]["prompt_tokens"], d["usage"]["prompt_tokens"]);
  EXPECT_EQ(r["usage"]["completion_tokens"], d["usage"]["completion_tokens"]);
  Json body = chat("big", "Once upon a time");
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto streamed = ask(body);
  ASSERT_TRUE(streamed && streamed->status == 200);
  std::string text;
  Json usage;
  for (const std::string& e : sse_events(streamed->body)) {
    if (e == "[DONE]") continue;
    const Json chunk = Json::parse(e);
    if (chunk.contains("usage") && !chunk["usage"].is_null()) usage = chunk["usage"];
    for (const Json& c : chunk["choices"]) {
      if (c["delta"].contains("content") && c["delta"]["content"].is_string()) text += c["delta"]["content"].get<std::string>();
    }
  }
  EXPECT_EQ(text, d["choices"][0]["message"]["content"]);
  EXPECT_EQ(usage["completion_tokens"], d["usage"]["completion_tokens"]);
}

TEST_F(RouterTest, FailuresBeforeTheFirstTokenAreRetriedThenReportedNamingTheUpstream) {
  start_gateway();
  fault.script({{.kind = FaultKind::kStatus, .status = 500}, {.kind = FaultKind::kStatus, .status = 503}});
  auto ok = ask(chat("flaky", "hi"));
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(Json::parse(ok->body)["choices"][0]["message"]["content"], "Hello world");
  EXPECT_EQ(Json::parse(ok->body)["usage"]["prompt_tokens"], 11);
  EXPECT_EQ(fault.requests(), 3);  // two failures, then the answer
  const Json sent = Json::parse(fault.bodies().back());
  EXPECT_EQ(sent["model"], "flaky");
  EXPECT_EQ(sent["stream"], true);
  EXPECT_EQ(sent["temperature"], 0);  // as the client sent it

  fault.script({{.kind = FaultKind::kStatus, .status = 429, .retry_after_s = 1}, {.kind = FaultKind::kStatus, .status = 429},
                {.kind = FaultKind::kStatus, .status = 429, .retry_after_s = 7}});
  auto limited = ask(chat("flaky", "hi"));
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->get_header_value("Retry-After"), "7");
  const Json e = Json::parse(limited->body)["error"];
  EXPECT_EQ(e["code"], "upstream_rate_limited");
  EXPECT_NE(e["message"].get<std::string>().find("the hosted model 'flaky'"), std::string::npos) << e;
  EXPECT_NE(e["message"].get<std::string>().find("scripted failure"), std::string::npos) << e;

  fault.script({{.kind = FaultKind::kStatus, .status = 400}});
  auto refused = ask(chat("flaky", "hi"));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);  // the client's fault: not retried
  EXPECT_NE(refused->body.find("refused the request (400)"), std::string::npos) << refused->body;
}

TEST_F(RouterTest, ATimeoutACutStreamAndAnAbsentUpstreamAreErrors) {
  start_gateway({}, {.breaker_failures = 100, .backoff = std::chrono::milliseconds(10)});
  fault.script({{.kind = FaultKind::kDelay, .delay_ms = 1500}, {.kind = FaultKind::kDelay, .delay_ms = 1500},
                {.kind = FaultKind::kDelay, .delay_ms = 1500}});
  auto slow = ask(chat("flaky", "hi"));
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->status, 504) << slow->body;
  EXPECT_EQ(Json::parse(slow->body)["error"]["code"], "upstream_timeout");

  fault.script({{.kind = FaultKind::kCut}});
  Json body = chat("flaky", "hi");
  body["stream"] = true;
  auto cut = ask(body);
  ASSERT_TRUE(cut && cut->status == 200);
  bool error_event = false, finished = false;
  for (const std::string& e : sse_events(cut->body)) {
    if (e == "[DONE]") continue;
    const Json chunk = Json::parse(e);
    if (chunk.contains("error")) error_event = chunk["error"]["message"].get<std::string>().find("closed the stream before its end") != std::string::npos;
    if (chunk.contains("choices") && !chunk["choices"].empty() && !chunk["choices"][0]["finish_reason"].is_null()) finished = true;
  }
  EXPECT_TRUE(error_event) << cut->body;
  EXPECT_FALSE(finished) << "a cut answer must not look complete";

  specs[2].base_url = "http://127.0.0.1:1/v1";  // nothing listens there
  auto absent = hosted(specs[2], {.backoff = std::chrono::milliseconds(1)});
  auto stream = std::make_shared<engine::RequestStream>(1);
  router::CompletionRequest req;
  req.messages = Json::array({{{"role", "user"}, {"content", "hi"}}});
  auto r = absent->submit(req, stream);
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  EXPECT_EQ(std::get<ApiError>(r).status, 502);
  EXPECT_EQ(std::get<ApiError>(r).code, "upstream_unreachable");
}

// Tools and logprobs go to a hosted model as the client sent them; its tool calls (arguments in
// pieces) and its tokens' log-probabilities come back in OpenAI's shape, whole or streamed.
TEST_F(RouterTest, AHostedModelTakesToolsAndLogprobs) {
  start_gateway();
  const Json tools = Json::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather of a city",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])");
  Json body = chat("flaky", "Weather in Paris?");
  body["tools"] = tools;
  body["tool_choice"] = "required";
  fault.script({{.kind = FaultKind::kTools}, {.kind = FaultKind::kTools}});
  auto whole = ask(body);
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const Json w = Json::parse(whole->body);
  EXPECT_EQ(w["choices"][0]["finish_reason"], "tool_calls");
  ASSERT_EQ(w["choices"][0]["message"]["tool_calls"].size(), 1u) << w;
  const Json& call = w["choices"][0]["message"]["tool_calls"][0];
  EXPECT_EQ(call["id"], "call_up1");
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(Json::parse(call["function"]["arguments"].get<std::string>()), Json({{"city", "Paris"}}));
  EXPECT_TRUE(w["choices"][0]["message"]["content"].is_null());
  const Json sent = Json::parse(fault.bodies().back());
  EXPECT_EQ(sent["tools"], tools);
  EXPECT_EQ(sent["tool_choice"], "required");
  body["stream"] = true;
  auto streamed = ask(body);
  ASSERT_TRUE(streamed && streamed->status == 200);
  Json streamed_calls, finish;
  for (const std::string& e : sse_events(streamed->body)) {
    if (e == "[DONE]") continue;
    const Json chunk = Json::parse(e);
    for (const Json& c : chunk["choices"]) {
      if (c["delta"].contains("tool_calls")) streamed_calls = c["delta"]["tool_calls"];
      if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
    }
  }
  ASSERT_EQ(streamed_calls.size(), 1u) << streamed->body;
  EXPECT_EQ(streamed_calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(finish, "tool_calls");

  Json lp = chat("flaky", "hi");
  lp["logprobs"] = true;
  lp["top_logprobs"] = 2;
  fault.script({{.kind = FaultKind::kLogprobs}});
  auto answered = ask(lp);
  ASSERT_TRUE(answered && answered->status == 200) << (answered ? answered->body : "");
  const Json a = Json::parse(answered->body);
  EXPECT_EQ(a["choices"][0]["message"]["content"], "Hello world");
  const Json& content = a["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u) << a;
  EXPECT_EQ(content[0]["token"], "Hello");
  EXPECT_FLOAT_EQ(content[0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(content[0]["bytes"], Json({72, 101, 108, 108, 111}));
  ASSERT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(content[0]["top_logprobs"][1]["token"], "Hi");
  EXPECT_EQ(content[1]["token"], " world");
  const Json lp_sent = Json::parse(fault.bodies().back());
  EXPECT_EQ(lp_sent["logprobs"], true);
  EXPECT_EQ(lp_sent["top_logprobs"], 2);
}

// An https upstream: its certificate is checked against ca_file (or the system's CAs); one that
// fails verification is an error naming it, not retried, and the request never leaves.
TEST_F(RouterTest, AnHttpsUpstreamIsVerifiedAgainstItsCaFile) {
  const std::string dir = ::testing::TempDir() + "owl-tls-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const owl::testing::TlsFiles files = owl::testing::make_self_signed(dir);
  ASSERT_FALSE(files.cert.empty());
  FaultServer tls(&files);
  specs[2].base_url = fmt::format("https://127.0.0.1:{}/v1", tls.port());
  specs[2].ca_file = files.cert;
  start_gateway();
  auto ok = ask(chat("flaky", "hi"));
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(Json::parse(ok->body)["choices"][0]["message"]["content"], "Hello world");
  EXPECT_EQ(tls.requests(), 1);

  router::ModelSpec untrusted = specs[2];
  untrusted.ca_file.clear();  // the system's CAs do not know this certificate
  auto provider = hosted(untrusted);
  auto stream = std::make_shared<engine::RequestStream>(1);
  router::CompletionRequest req;
  req.messages = Json::array({{{"role", "user"}, {"content", "hi"}}});
  auto r = provider->submit(req, stream);
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  const ApiError& e = std::get<ApiError>(r);
  EXPECT_EQ(e.status, 502);
  EXPECT_EQ(e.code, "upstream_tls");
  EXPECT_NE(e.message.find("self-signed certificate"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("ca_file"), std::string::npos) << e.message;
  EXPECT_EQ(tls.requests(), 1) << "no request may be sent over an unverified connection";
  std::filesystem::remove_all(dir);
}

// At shutdown, a relayed answer still running is cancelled: the client hears it was cut.
TEST_F(RouterTest, CancellingRunningRequestsCutsARelayedAnswer) {
  start_gateway();
  fault.script({{.kind = FaultKind::kSlow}});
  Json body = chat("flaky", "hi");
  body["stream"] = true;
  auto answer = std::async(std::launch::async, [&] { return ask(body); });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  gateway_models->cancel_running();
  auto r = answer.get();
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_NE(r->body.find("\"code\":\"cancelled\""), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("\"finish_reason\":\"stop\""), std::string::npos) << r->body;
  EXPECT_EQ(last_gateway_log()["finish_reason"], "cancelled");
}

TEST_F(RouterTest, RepeatedFailuresOpenTheBreakerAndItClosesAfterTheCooldown) {
  start_gateway({}, {.breaker_failures = 2, .breaker_cooldown = std::chrono::milliseconds(800), .backoff = std::chrono::milliseconds(1)});
  fault.script(std::vector<Fault>(6, Fault{.kind = FaultKind::kStatus, .status = 500}));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(ask(chat("flaky", "hi"))->status, 502);
  EXPECT_EQ(fault.requests(), 6);  // each request: 1 + 2 retries
  auto skipped = ask(chat("flaky", "hi"));
  EXPECT_EQ(skipped->status, 503);
  EXPECT_EQ(Json::parse(skipped->body)["error"]["code"], "upstream_unavailable");
  EXPECT_EQ(fault.requests(), 6);  // not asked while open
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  EXPECT_EQ(ask(chat("flaky", "hi"))->status, 200);
}

TEST_F(RouterTest, WhatAHostedModelCannotTakeIsRefused) {
  start_gateway();
  Json body = chat("big", "hi");
  body["grammar"] = "root ::= \"a\"";
  auto r = ask(body);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("a GBNF grammar cannot be sent to the hosted model 'big'"), std::string::npos) << r->body;
  body = chat("big", "hi");
  body["lora"] = Json::array({{{"id", 0}, {"scale", 1.0}}});
  r = ask(body);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("lora"), std::string::npos) << r->body;
  EXPECT_EQ(fault.requests(), 0);
}

// ---- routes ----

router::RouteSpec route(const std::string& name, std::vector<router::CascadeStep> steps, std::vector<std::string> fallback = {},
                        router::SensitivePolicy sensitive = router::SensitivePolicy::kLocalOnly) {
  return router::RouteSpec{.name = name, .sensitive = sensitive, .cascade = std::move(steps), .fallback = std::move(fallback)};
}

TEST_F(RouterTest, ACascadeAnswersFromItsFirstStepWhenConfidentAndEscalatesOtherwise) {
  // The stories model's greedy continuation is confident; a bar above 0 can never be met.
  start_gateway({route("trusting", {{.model = "small", .escalate_if = {.mean_logprob_below = -50}}, {.model = "flaky"}}),
                 route("doubting", {{.model = "small", .escalate_if = {.mean_logprob_below = -0.0001}}, {.model = "flaky"}})});
  auto kept = ask(chat("trusting", "Once upon a time"));
  ASSERT_TRUE(kept && kept->status == 200) << (kept ? kept->body : "");
  EXPECT_EQ(Json::parse(kept->body)["model"], "small");
  EXPECT_EQ(kept->get_header_value("x-owl-model"), "small");
  EXPECT_EQ(kept->get_header_value("x-owl-route"), "cascade");
  EXPECT_EQ(kept->get_header_value("x-owl-route-name"), "trusting");
  EXPECT_EQ(Json::parse(kept->body)["choices"][0]["logprobs"], nullptr);  // measured, not shown
  EXPECT_EQ(fault.requests(), 0);
  Json log = last_gateway_log();
  EXPECT_EQ(log["route"], "trusting");
  EXPECT_EQ(log["route_decision"], "cascade");
  EXPECT_TRUE(log.contains("mean_logprob"));
  EXPECT_GT(log["cost_usd"].get<double>(), 0);  // local compute at 36 $/core-hour

  auto escalated = ask(chat("doubting", "Once upon a time"));
  ASSERT_TRUE(escalated && escalated->status == 200) << (escalated ? escalated->body : "");
  EXPECT_EQ(Json::parse(escalated->body)["model"], "flaky");
  EXPECT_EQ(Json::parse(escalated->body)["choices"][0]["message"]["content"], "Hello world");
  EXPECT_EQ(escalated->get_header_value("x-owl-route"), "escalated");
  EXPECT_EQ(fault.requests(), 1);
  log = last_gateway_log();
  EXPECT_EQ(log["route_decision"], "escalated");
  ASSERT_EQ(log["route_steps"].size(), 2u);
  EXPECT_NE(log["route_steps"][0].get<std::string>().find("small: escalated (mean_logprob"), std::string::npos) << log;
  // Streamed: the held answer arrives as chunks once it is judged.
  Json body = chat("trusting", "Once upon a time");
  body["stream"] = true;
  auto streamed = ask(body);
  ASSERT_TRUE(streamed && streamed->status == 200);
  EXPECT_EQ(streamed->get_header_value("x-owl-model"), "small");
  std::string text;
  for (const std::string& e : sse_events(streamed->body)) {
    if (e == "[DONE]") continue;
    const Json chunk = Json::parse(e);
    EXPECT_EQ(chunk["model"], "small");
    if (chunk["choices"][0]["delta"].contains("content")) text += chunk["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, Json::parse(kept->body)["choices"][0]["message"]["content"]);
  const std::string metrics = gw->Get("/metrics")->body;
  EXPECT_NE(metrics.find("owl_route_decisions_total{route=\"trusting\",decision=\"cascade\"} 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("owl_route_decisions_total{route=\"doubting\",decision=\"escalated\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("owl_cost_usd_total{route=\"trusting\",model=\"small\"} "), std::string::npos);
}

// Ollama's API reaches routes and hosted models as OpenAI's does: who answered in the body and
// headers, the cascade and the sensitive-data rule applied, streamed as NDJSON.
TEST_F(RouterTest, OllamasApiServesRoutesAndHostedModels) {
  start_gateway({route("doubting", {{.model = "small", .escalate_if = {.mean_logprob_below = -0.0001}}, {.model = "flaky"}})});
  const Json chat_body = {{"model", "doubting"}, {"stream", false}, {"options", {{"num_predict", 8}}},
                          {"messages", Json::array({{{"role", "user"}, {"content", "Once upon a time"}}})}};
  auto escalated = gw->Post("/api/chat", chat_body.dump(), "application/json");
  ASSERT_TRUE(escalated);
  ASSERT_EQ(escalated->status, 200) << escalated->body;
  const Json e = Json::parse(escalated->body);
  EXPECT_EQ(e["message"]["content"], "Hello world");
  EXPECT_EQ(e["model"], "flaky:latest");
  EXPECT_TRUE(e["done"]);
  EXPECT_EQ(escalated->get_header_value("x-owl-route"), "escalated");
  EXPECT_EQ(escalated->get_header_value("x-owl-model"), "flaky");
  EXPECT_EQ(fault.requests(), 1);
  Json log = last_gateway_log();
  EXPECT_EQ(log["route"], "doubting");
  EXPECT_EQ(log["route_decision"], "escalated");

  // A sensitive request stays on the private model, streamed.
  Json generate = {{"model", "doubting"}, {"prompt", "Write to bob@example.com about"}, {"options", {{"num_predict", 6}}}};
  auto kept = gw->Post("/api/generate", generate.dump(), "application/json");
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->status, 200) << kept->body;
  EXPECT_EQ(kept->get_header_value("x-owl-route"), "sensitive");
  EXPECT_EQ(kept->get_header_value("x-owl-model"), "small");
  std::istringstream lines(kept->body);
  std::string line, text;
  bool done = false;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(' ') == std::string::npos) continue;
    const Json j = Json::parse(line);
    EXPECT_EQ(j["model"], "small:latest");
    text += j.value("response", "");
    done = done || j["done"].get<bool>();
  }
  EXPECT_TRUE(done) << kept->body;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(fault.requests(), 1) << "the sensitive request must not leave";

  // A hosted model by its name; logprobs, which only local models give, are refused.
  Json hosted_body = chat_body;
  hosted_body["model"] = "flaky";
  auto direct = gw->Post("/api/chat", hosted_body.dump(), "application/json");
  ASSERT_TRUE(direct && direct->status == 200) << (direct ? direct->body : "");
  EXPECT_EQ(Json::parse(direct->body)["message"]["content"], "Hello world");
  hosted_body["logprobs"] = true;
  auto refused = gw->Post("/api/chat", hosted_body.dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_NE(refused->body.find("a hosted model"), std::string::npos) << refused->body;
}

TEST_F(RouterTest, AFailedStepHandsTheRequestToTheFallbacks) {
  start_gateway({route("fb", {{.model = "flaky"}}, {"big"})}, {.backoff = std::chrono::milliseconds(1)});
  fault.script(std::vector<Fault>(3, Fault{.kind = FaultKind::kStatus, .status = 503}));
  auto r = ask(chat("fb", "Once upon a time"));
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  EXPECT_EQ(Json::parse(r->body)["model"], "big");
  EXPECT_EQ(r->get_header_value("x-owl-route"), "fallback");
  EXPECT_EQ(fault.requests(), 3);
  EXPECT_GT(std::stod(r->get_header_value("x-owl-cost-usd")), 0);  // big's tokens at its price
  const Json log = last_gateway_log();
  EXPECT_NE(log["route_steps"][0].get<std::string>().find("flaky: failed"), std::string::npos) << log;
  EXPECT_EQ(log["route_steps"][1], "big: answered");
}

// Sensitive requests reach private models only: never a hosted one, whatever fails.
TEST_F(RouterTest, SensitiveDataNeverLeavesEvenWhenThePrivateModelFails) {
  start_gateway({route("auto", {{.model = "small", .escalate_if = {.mean_logprob_below = -0.0001}}, {.model = "flaky"}}, {"flaky"}),
                 route("hosted_only", {{.model = "flaky"}}),
                 route("blocked", {{.model = "small"}}, {}, router::SensitivePolicy::kBlock)});
  const std::string secret = "Write to jane.doe@example.com about card 4111 1111 1111 1111";
  // Escalation would go to flaky: with sensitive data the small model's answer stands.
  auto r = ask(chat("auto", secret));
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  EXPECT_EQ(Json::parse(r->body)["model"], "small");
  EXPECT_EQ(r->get_header_value("x-owl-route"), "sensitive");
  Json log = last_gateway_log();
  EXPECT_EQ(log["detectors"], Json::array({"card", "email"}));
  EXPECT_EQ(log["route_steps"], Json::array({"small: answered", "flaky: skipped (not private)"}));
  EXPECT_EQ(log.dump().find("jane.doe"), std::string::npos);  // names only, never the text
  EXPECT_NE(log["prompt"].get<std::string>().find("Write to [REDACTED:email] about card [REDACTED:card]"), std::string::npos) << log;
  // The header marks a request without any detectable data.
  r = ask(chat("hosted_only", "Once upon a time"), {{"x-owl-sensitive", "true"}});
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "sensitive_data_no_private_model");
  EXPECT_NE(r->body.find("x-owl-sensitive"), std::string::npos);
  r = ask(chat("blocked", secret));
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "sensitive_data_refused");
  // The private model fails (a prompt over its context): the error, and still nothing upstream.
  std::string long_prompt = secret;
  for (int i = 0; i < 200; ++i) long_prompt += " and then the dog ran home";
  r = ask(chat("auto", long_prompt));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "private_models_unavailable");
  EXPECT_EQ(r->body.find("jane.doe"), std::string::npos);
  // Streamed, the same.
  Json body = chat("auto", long_prompt);
  body["stream"] = true;
  r = ask(body);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(fault.requests(), 0);
  const std::string metrics = gw->Get("/metrics")->body;
  EXPECT_NE(metrics.find("owl_route_decisions_total{route=\"auto\",decision=\"failed\"} 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("owl_route_decisions_total{route=\"blocked\",decision=\"blocked\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("owl_sensitive_detections_total{route=\"auto\",detector=\"card\"} 3\n"), std::string::npos);
  // Without sensitive data the same long prompt goes to the fallback.
  std::string plain = "Tell me a story";
  for (int i = 0; i < 200; ++i) plain += " and then the dog ran home";
  r = ask(chat("auto", plain));
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  EXPECT_EQ(Json::parse(r->body)["model"], "flaky");
  EXPECT_EQ(fault.requests(), 1);
}

// Rules pick the model before the cascade: the first that holds decides.
TEST_F(RouterTest, RulesPickTheModelBeforeTheCascade) {
  router::RouteSpec r = route("ruled", {{.model = "small", .escalate_if = {.mean_logprob_below = -1000}}, {.model = "flaky"}});
  r.rules = {{.prompt_chars_above = 120, .model = "big"},
             {.keywords = {"contract", "lawsuit"}, .model = "flaky"},
             {.regex = "TCK-[0-9]{4}", .model = "big"},
             {.users = {"vip"}, .model = "flaky"},
             {.headers = {{"x-tier", "gold"}}, .model = "flaky"},
             {.json = true, .model = "big"}};
  start_gateway({r});
  auto picked = [&](const Json& body, const httplib::Headers& headers = {}) {
    auto res = ask(body, headers);
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
    return res ? std::make_pair(Json::parse(res->body)["model"].get<std::string>(), res->get_header_value("x-owl-route")) : std::make_pair(std::string(), std::string());
  };
  EXPECT_EQ(picked(chat("ruled", "Once upon a time")), std::make_pair(std::string("small"), std::string("cascade")));
  EXPECT_EQ(picked(chat("ruled", std::string(150, 'a'))).first, "big");
  EXPECT_EQ(picked(chat("ruled", "Read the Contract first")), std::make_pair(std::string("flaky"), std::string("rule")));
  EXPECT_EQ(picked(chat("ruled", "contracts are long")).first, "small");  // whole words only
  EXPECT_EQ(picked(chat("ruled", "see TCK-1234")).first, "big");
  Json body = chat("ruled", "hi");
  body["user"] = "vip";
  EXPECT_EQ(picked(body).first, "flaky");
  EXPECT_EQ(picked(chat("ruled", "hi"), {{"X-Tier", "gold"}}).first, "flaky");
  EXPECT_EQ(picked(chat("ruled", "hi"), {{"X-Tier", "silver"}}).first, "small");
  body = chat("ruled", "hi");
  body["response_format"] = {{"type", "json_object"}};
  EXPECT_EQ(picked(body).first, "big");
  Json log = last_gateway_log();
  EXPECT_EQ(log["route_decision"], "rule");
  EXPECT_EQ(log["route_steps"][1], "big: answered");
  // A rule that picks a hosted model does not take a sensitive request there: the cascade's
  // private step answers, and the fault server is never asked.
  const int before = fault.requests();
  EXPECT_EQ(picked(chat("ruled", "the contract of bob@example.com")), std::make_pair(std::string("small"), std::string("sensitive")));
  EXPECT_EQ(fault.requests(), before);
  log = last_gateway_log();
  EXPECT_EQ(log["route_steps"][1], "flaky: skipped (not private)");
}

TEST_F(RouterTest, RoutesAreListedAndACascadeTakesOneChoice) {
  start_gateway({route("auto", {{.model = "small", .escalate_if = {.empty = true}}, {.model = "big"}})});
  auto models = gw->Get("/v1/models");
  ASSERT_TRUE(models && models->status == 200);
  std::vector<std::string> ids;
  const Json listed = Json::parse(models->body);
  for (const Json& m : listed["data"]) ids.push_back(m["id"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"small", "big", "flaky", "auto"}));
  Json body = chat("auto", "hi");
  body["n"] = 2;
  auto r = ask(body);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("n must be 1"), std::string::npos);
}

}  // namespace
}  // namespace owl::serve
