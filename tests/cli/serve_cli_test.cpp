// `owl serve` as a supervisor (systemd, Kubernetes) sees it: every start-up failure exits 1 at
// once with its cause, and a signal stops it at every moment.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <vector>

#include "support/owl_process.h"
#include "support/redis_server.h"
#include "support/run_owl.h"

namespace {

using namespace std::chrono_literals;
using owl::testing::OwlProcess;

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";

std::string temp_file(const std::string& name, const std::string& content) {
  const std::string path = "/tmp/owl_serve_cli_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << content;
  return path;
}

struct Case {
  std::string args;      // after `owl serve --port 0`
  std::string expected;  // in its stderr
};

// Each case exits 1 before serving, naming its cause.
void expect_start_up_failures(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    OwlProcess owl("serve --port 0 " + c.args);
    const auto code = owl.wait_exit(20s);
    ASSERT_TRUE(code.has_value()) << "owl serve " << c.args << " did not exit:\n" << owl.log();
    EXPECT_EQ(*code, 1) << c.args << "\n" << owl.log();
    EXPECT_NE(owl.log().find(c.expected), std::string::npos) << c.args << "\n" << owl.log();
  }
}

TEST(ServeCli, EveryStartUpFailureExitsOneWithItsCause) {
  const std::string garbage = temp_file("garbage.gguf", std::string(600, 'x'));
  const std::string bad_template = temp_file("bad.jinja", "{% if %}");
  const std::vector<Case> cases = {
      {"-m /tmp", "--model /tmp: not a regular file"},
      {"-m /nonexistent.gguf", "--model /nonexistent.gguf: no such file"},
      {"-m " + garbage, "bad magic"},  // found while loading, after the socket is bound
      {"-m " + kModel + " --chat-format bogus", "--chat-format 'bogus' is not one of: chatml"},
      {"-m " + kModel + " --parallel 0", "--parallel 0 out of range"},
      {"-m " + kModel + " -np 100000", "--parallel 100000 out of range"},
      {"-m " + kModel + " --queue -1", "queue size -1 out of range"},
      {"-m " + kModel + " -t 100000", "--threads: Value 100000 not in range 0 to 512"},
      {"-m " + kModel + " --chat-template " + bad_template, "--chat-template " + bad_template},
      {"-m " + kModel + " --drain-timeout -1", "--drain-timeout -1 out of range"},
  };
  expect_start_up_failures(cases);
  std::remove(garbage.c_str());
  std::remove(bad_template.c_str());
}

// --config: every mistake stops start-up, naming the file, the line and the key.
TEST(ServeCli, AConfigThatCannotWorkExitsOneWithItsCause) {
  const std::string hosted = "  - {name: big, base_url: 'http://127.0.0.1:1/v1', api_key_env: OWL_TEST_UNSET_KEY}\n";
  const std::string ok_local = "models:\n  - {name: small, path: " + kModel + "}\n";
  const std::string unknown_key = temp_file("unknown.yaml", ok_local + "routes:\n  - {name: r, cascade: [small], fallbacks: [small]}\n");
  const std::string missing_file = temp_file("missing.yaml", "models:\n  - {name: small, path: /nonexistent.gguf}\n");
  const std::string unset_key = temp_file("unset.yaml", ok_local + hosted);
  const std::string bad_regex = temp_file("regex.yaml", ok_local + "sensitive:\n  custom: [{name: x, regex: 'a('}]\n");
  const std::string bad_parallel = temp_file("parallel.yaml", "models:\n  - {name: small, path: " + kModel + ", parallel: 0}\n");
  const std::vector<Case> cases = {
      {"--config /nonexistent.yaml", "/nonexistent.yaml"},
      {"--config " + unknown_key, unknown_key + ":4: routes[0].fallbacks: unknown key"},
      {"--config " + missing_file, missing_file + ":2: model 'small': path /nonexistent.gguf: no such file"},
      {"--config " + unset_key, unset_key + ":3: model 'big': the environment variable OWL_TEST_UNSET_KEY (api_key_env) is not set"},
      {"--config " + bad_regex, bad_regex + ": sensitive: custom detector 'x': regex 'a(' does not compile"},
      {"--config " + bad_parallel, "models[0].parallel: 0 out of range 1..256"},
      {"--config " + unknown_key + " -m " + kModel, "give one of -m/--model (one model) or --config"},
      {"", "give one of -m/--model (one model) or --config"},
  };
  expect_start_up_failures(cases);
  for (const std::string& f : {unknown_key, missing_file, unset_key, bad_regex, bad_parallel}) std::remove(f.c_str());
}

// --lora and a configured model's lora: every mistake stops start-up naming its cause; adapters
// named on the command line are model ids, and a configured model's apply to all its answers.
TEST(ServeCli, LoraAdaptersAtStartUp) {
  const std::string adapter = std::string(OWL_SHARED_DIR) + "/reference/lora/stories260K.lora-r4-all.gguf";
  const std::string config_missing = temp_file("lora_missing.yaml", "models:\n  - {name: small, path: " + kModel + ",\n     lora: [/nonexistent.gguf]}\n");
  const std::string config_bad = temp_file("lora_bad.yaml", "models:\n  - name: small\n    path: " + kModel + "\n    lora: [" + kModel + "]\n");
  expect_start_up_failures({
      {"-m " + kModel + " --lora a=/nonexistent.gguf", "--lora a: /nonexistent.gguf: no such file"},
      {"-m " + kModel + " --lora a=" + adapter + " --lora a=" + adapter, "--lora: two adapters are named 'a'"},
      {"-m " + kModel + " --lora-scaled a=" + adapter + " 1000", "the scale is outside [-100, 100]"},
      {"-m " + kModel + " --lora a=" + kModel, "--lora a: " + kModel + ": general.type is"},
      {"--config " + config_missing + " --lora a=" + adapter, "--lora names adapters of -m's model"},
      {"--config " + config_missing, config_missing + ":3: model 'small': lora /nonexistent.gguf: no such file"},
      {"--config " + config_bad, "model 'small': " + config_bad + ":4: lora: " + kModel + ": general.type is"},
  });
  auto complete = [](int port, const std::string& model) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    const nlohmann::json body = {{"model", model}, {"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 0}};
    auto res = c.Post("/v1/completions", body.dump(), "application/json");
    return res && res->status == 200 ? nlohmann::json::parse(res->body)["choices"][0]["text"].get<std::string>() : "(failed)";
  };
  OwlProcess named("serve --port 0 -t 1 -m " + kModel + " --lora a=" + adapter + " --lora-scaled " + adapter + " 0.5");
  ASSERT_TRUE(named.wait_for_log("ready", 30s)) << named.log();
  EXPECT_NE(named.log().find("ready: model 'stories260K' (adapters 'stories260K:a', 'stories260K:stories260K.lora-r4-all')"),
            std::string::npos) << named.log();
  const std::string with_a = complete(named.port(), "stories260K:a");
  EXPECT_NE(with_a, complete(named.port(), "stories260K"));
  EXPECT_NE(with_a, complete(named.port(), "stories260K:stories260K.lora-r4-all"));
  const std::string config = temp_file("lora.yaml", "models:\n  - name: tuned\n    path: " + kModel + "\n    lora: [" + adapter + "]\n");
  OwlProcess configured("serve --port 0 -t 1 --config " + config);
  ASSERT_TRUE(configured.wait_for_log("ready", 30s)) << configured.log();
  EXPECT_EQ(complete(configured.port(), "tuned"), with_a);
  for (OwlProcess* p : {&named, &configured}) {
    p->signal(SIGTERM);
    EXPECT_EQ(p->wait_exit(20s), 0) << p->log();
  }
  for (const std::string& f : {config_missing, config_bad, config}) std::remove(f.c_str());
}

// owl serve --config --ledger records each answer with its cost; owl usage sums them.
TEST(ServeCli, TheLedgerRecordsEachAnswerAndUsageSumsIt) {
  const std::string config = temp_file("ledger.yaml", "models:\n  - {name: small, path: " + kModel + "}\n"
                                                     "routes:\n  - {name: auto, cascade: [small]}\nlocal_cost: {per_core_hour: 3600}\n");
  const std::string ledger = temp_file("ledger.db", "");
  std::remove(ledger.c_str());
  OwlProcess owl("serve --port 0 -t 1 --config " + config + " --ledger " + ledger);
  ASSERT_TRUE(owl.wait_for_log("ready", 30s)) << owl.log();
  httplib::Client c("127.0.0.1", owl.port());
  for (const char* model : {"auto", "auto", "small"}) {
    const std::string body = std::string(R"({"model":")") + model + R"(","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"user":"ann"})";
    auto res = c.Post("/v1/chat/completions", body, "application/json");
    ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
  }
  // Ollama's API is recorded too.
  auto ollama = c.Post("/api/chat", R"({"model":"small","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":4}})",
                       "application/json");
  ASSERT_TRUE(ollama && ollama->status == 200) << (ollama ? ollama->body : "no answer");
  owl.signal(SIGTERM);
  EXPECT_EQ(owl.wait_exit(20s), 0) << owl.log();
  auto by_route = owl::testing::run_owl("usage --ledger " + ledger + " --by route --json");
  ASSERT_EQ(by_route.exit_code, 0) << by_route.out;
  const auto rows = nlohmann::json::parse(by_route.out);
  ASSERT_EQ(rows.size(), 2u) << by_route.out;
  std::map<std::string, nlohmann::json> by;
  for (const auto& r : rows) by[r["route"].get<std::string>()] = r;
  EXPECT_EQ(by["auto"]["requests"], 2);
  EXPECT_EQ(by[""]["requests"], 2);  // the requests that named the model
  EXPECT_GT(by["auto"]["cost_usd"].get<double>(), 0);  // 1 core at 1 $ per second
  EXPECT_GT(by["auto"]["completion_tokens"].get<int>(), 0);
  auto table = owl::testing::run_owl("usage --ledger " + ledger + " --by user");
  EXPECT_EQ(table.exit_code, 0) << table.out;
  EXPECT_NE(table.out.find("ann"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("total"), std::string::npos) << table.out;
  auto bad = owl::testing::run_owl("usage --ledger " + ledger + " --by week");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("--by 'week' is not one of: day, route, model, user"), std::string::npos) << bad.out;
  bad = owl::testing::run_owl("usage --ledger " + ledger + " --since 5/12/2026");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("--since '5/12/2026' is not a date (YYYY-MM-DD)"), std::string::npos) << bad.out;
  bad = owl::testing::run_owl("usage --ledger /nonexistent.db");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("--ledger /nonexistent.db: no such file"), std::string::npos) << bad.out;
  auto future = owl::testing::run_owl("usage --ledger " + ledger + " --since 2999-01-01 --json");
  EXPECT_EQ(future.out, "[]\n");
  for (const std::string& f : {config, ledger, ledger + "-wal", ledger + "-shm"}) std::remove(f.c_str());
}

// The key `owl keys create` printed (its stdout line; stderr says it is shown once).
std::string created_key(const std::string& args) {
  auto r = owl::testing::run_owl("keys create " + args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const size_t at = r.out.find("owl-");
  EXPECT_NE(at, std::string::npos) << r.out;
  return at == std::string::npos ? "" : r.out.substr(at, r.out.find('\n', at) - at);
}

TEST(ServeCli, APIKeysFromOwlKeysGuardEveryEndpoint) {
  const std::string state = temp_file("state.db", ""), ledger = temp_file("auth-ledger.db", "");
  // The config's state: block is --auth --state.
  const std::string config = temp_file("auth.yaml", "models:\n  - {name: small, path: " + kModel + "}\n"
                                                   "routes:\n  - {name: auto, cascade: [small]}\nlocal_cost: {per_core_hour: 3600}\n"
                                                   "state: {auth: true, file: " + state + "}\n");
  std::remove(state.c_str());
  std::remove(ledger.c_str());
  const std::string alice = created_key("--state " + state + " --name alice --models small");
  const std::string broke = created_key("--state " + state + " --name broke --budget-usd 4 --period total");
  const std::string carol = created_key("--state " + state + " --name carol --budget-usd 100 --period day");
  OwlProcess owl("serve --port 0 -t 1 --config " + config + " --ledger " + ledger);
  ASSERT_TRUE(owl.wait_for_log("ready", 30s)) << owl.log();
  EXPECT_NE(owl.log().find("API keys required (3 in force"), std::string::npos) << owl.log();
  httplib::Client c("127.0.0.1", owl.port());
  EXPECT_EQ(c.Get("/health")->status, 200);
  for (const char* path : {"/v1/models", "/metrics", "/api/tags", "/lora-adapters"}) EXPECT_EQ(c.Get(path)->status, 401) << path;
  EXPECT_EQ(c.Post("/tokenize", R"({"content":"hi"})", "application/json")->status, 401);
  auto chat = [&](const std::string& key, const std::string& model) {
    httplib::Client k("127.0.0.1", owl.port());
    k.set_bearer_token_auth(key);
    return k.Post("/v1/chat/completions", R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}],"max_tokens":4})",
                  "application/json");
  };
  auto ok = chat(alice, "small");
  ASSERT_TRUE(ok && ok->status == 200) << (ok ? ok->body : "no answer");
  auto route = chat(alice, "auto");
  ASSERT_TRUE(route);
  EXPECT_EQ(route->status, 403);
  EXPECT_NE(route->body.find("model_not_allowed"), std::string::npos) << route->body;
  // A worst case of 4 tokens at 1 $ a second each (and the prompt) is over a 4 $ budget.
  auto poor = chat(broke, "small");
  ASSERT_TRUE(poor);
  EXPECT_EQ(poor->status, 429);
  EXPECT_NE(poor->body.find("insufficient_quota"), std::string::npos) << poor->body;
  EXPECT_FALSE(poor->has_header("Retry-After"));  // a total budget never refills
  for (const char* model : {"small", "auto", "small"}) {
    auto res = chat(carol, model);
    ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
  }
  auto revoked = owl::testing::run_owl("keys revoke alice --state " + state);
  ASSERT_EQ(revoked.exit_code, 0) << revoked.out;
  EXPECT_EQ(chat(alice, "small")->status, 401);  // from the next request, without a restart
  owl.signal(SIGTERM);
  EXPECT_EQ(owl.wait_exit(20s), 0) << owl.log();
  EXPECT_EQ(owl.log().find(carol.substr(17)), std::string::npos);  // no secret in the log
  // What carol's key spent is what the ledger priced her requests at.
  auto shown = owl::testing::run_owl("keys show carol --state " + state);
  ASSERT_EQ(shown.exit_code, 0) << shown.out;
  const double spent = nlohmann::json::parse(shown.out)["spent_usd"].get<double>();
  auto usage = owl::testing::run_owl("usage --ledger " + ledger + " --by user --json");
  ASSERT_EQ(usage.exit_code, 0) << usage.out;
  double priced = 0;
  for (const auto& row : nlohmann::json::parse(usage.out)) {
    if (row["user"] == "carol") priced = row["cost_usd"].get<double>();
  }
  EXPECT_GT(spent, 0);
  EXPECT_NEAR(spent, priced, 1e-9);
  auto listed = owl::testing::run_owl("keys list --state " + state);
  EXPECT_EQ(listed.out.find("owl-"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("revoked"), std::string::npos) << listed.out;
  for (const std::string& f : {config, state, state + "-wal", state + "-shm", ledger, ledger + "-wal", ledger + "-shm"}) std::remove(f.c_str());
}

// Two gateways share one key's limits and one ledger through Redis: a burst from many clients at
// both is admitted no more than the key's requests per minute, each admitted request is recorded
// once, and without Redis both fail closed.
TEST(ServeCli, TwoGatewaysShareAKeysLimitsThroughRedis) {
  owl::testing::RedisServer redis;
  ASSERT_TRUE(redis.answers()) << "redis-server did not start (scripts/setup.sh installs it)";
  const std::string key = created_key("--redis " + redis.url() + " --name team --rpm 20");
  std::vector<std::unique_ptr<OwlProcess>> gateways;
  for (int g = 0; g < 2; ++g) {
    gateways.push_back(std::make_unique<OwlProcess>("serve --port 0 -t 1 --parallel 4 -m " + kModel + " --auth --redis " + redis.url() +
                                                    " --ledger " + redis.url()));
  }
  for (auto& g : gateways) ASSERT_TRUE(g->wait_for_log("ready", 30s)) << g->log();
  std::atomic<int> admitted{0}, limited{0}, other{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", gateways[static_cast<size_t>(t % 2)]->port());
      c.set_bearer_token_auth(key);
      for (int i = 0; i < 4; ++i) {
        auto res = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":2})", "application/json");
        if (res && res->status == 200) ++admitted;
        else if (res && res->status == 429 && res->has_header("Retry-After")) ++limited;
        else ++other;
      }
    });
  }
  for (auto& t : clients) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(admitted.load(), 20);
  EXPECT_LE(admitted.load(), 20 + static_cast<int>(seconds * 20 / 60) + 1) << seconds << " s";
  EXPECT_EQ(admitted + limited, 64);
  EXPECT_EQ(other.load(), 0);
  // One ledger for both gateways: every admitted request, once.
  auto usage = owl::testing::run_owl("usage --ledger " + redis.url() + " --by user --json");
  ASSERT_EQ(usage.exit_code, 0) << usage.out;
  const auto rows = nlohmann::json::parse(usage.out);
  ASSERT_EQ(rows.size(), 1u) << usage.out;
  EXPECT_EQ(rows[0]["user"], "team");
  EXPECT_EQ(rows[0]["requests"], admitted.load());
  EXPECT_EQ(rows[0]["completion_tokens"], 2 * admitted.load());
  redis.stop();
  for (auto& g : gateways) {
    httplib::Client c("127.0.0.1", g->port());
    c.set_bearer_token_auth(key);
    auto res = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":2})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    EXPECT_NE(res->body.find("state_unavailable"), std::string::npos) << res->body;
    EXPECT_EQ(c.Get("/health")->status, 200);  // the node itself is well
  }
}

// A streamed completion through `port`: whether it ended with [DONE] and no error, whether any
// token came before it ended, and whether it carried an error event.
struct StreamOutcome {
  bool done = false;
  bool had_tokens = false;
  bool error_event = false;
  int status = 0;
};
StreamOutcome stream_completion(int port, int max_tokens) {
  StreamOutcome out;
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  std::string buffer;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"model":"small","prompt":"Once upon a time","max_tokens":)" + std::to_string(max_tokens) + R"(,"ignore_eos":true,"stream":true})";
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    if (buffer.find(R"("text":")") != std::string::npos) out.had_tokens = true;
    return true;
  };
  auto res = c.send(req);
  out.status = res ? res->status : 0;
  out.error_event = buffer.find(R"(data: {"error":)") != std::string::npos;
  out.done = buffer.find("data: [DONE]") != std::string::npos && !out.error_event;
  return out;
}

// A gateway balances a model over three nodes; a node killed under load fails no request that
// had not started streaming, and those that had end with an error event, not a hang.
TEST(ServeCli, AGatewaySpreadsRequestsOverNodesAndSurvivesOneDying) {
  std::vector<std::unique_ptr<OwlProcess>> nodes;
  std::string urls;
  for (int i = 0; i < 3; ++i) {
    nodes.push_back(std::make_unique<OwlProcess>("serve --port 0 -t 1 --parallel 4 -c 2048 --alias small -m " + kModel));
    ASSERT_TRUE(nodes.back()->wait_for_log("ready", 30s)) << nodes.back()->log();
    urls += (i ? ", " : "") + std::string("'http://127.0.0.1:") + std::to_string(nodes.back()->port()) + "'";
  }
  const std::string config = temp_file("gateway.yaml", "models:\n  - {name: small, nodes: [" + urls + "], retries: 0}\n");
  OwlProcess gateway("serve --port 0 --config " + config);
  ASSERT_TRUE(gateway.wait_for_log("ready", 30s)) << gateway.log();
  EXPECT_NE(gateway.log().find("'small' (3 nodes)"), std::string::npos) << gateway.log();
  // Twelve at once: each node gets some (the gateway counts what it sent before /health does).
  std::vector<std::thread> burst;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) burst.emplace_back([&] { ok += stream_completion(gateway.port(), 300).done; });
  for (auto& t : burst) t.join();
  EXPECT_EQ(ok.load(), 12);
  for (auto& node : nodes) {
    httplib::Client c("127.0.0.1", node->port());
    const std::string metrics = c.Get("/metrics")->body;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(metrics, m, std::regex(R"(owl_requests_total\{endpoint="/v1/completions",status="200"\} (\d+))"))) << metrics;
    EXPECT_GE(std::stoi(m[1]), 2) << "a node answered too few of the burst";
  }
  // Long answers from 12 clients, then node 1 dies.
  std::vector<StreamOutcome> outcomes(24);
  std::vector<std::thread> clients;
  for (int i = 0; i < 24; ++i) {
    clients.emplace_back([&, i] {
      if (i >= 12) std::this_thread::sleep_for(400ms);  // these arrive after the death
      outcomes[static_cast<size_t>(i)] = stream_completion(gateway.port(), 400);
    });
  }
  std::this_thread::sleep_for(200ms);
  nodes[1]->signal(SIGKILL);
  for (auto& t : clients) t.join();
  int cut = 0;
  for (const StreamOutcome& o : outcomes) {
    EXPECT_EQ(o.status, 200);
    if (!o.done) {
      ++cut;
      EXPECT_TRUE(o.had_tokens) << "a request that had not started streaming failed";
      EXPECT_TRUE(o.error_event) << "a cut stream ended without an error event";
    }
  }
  EXPECT_GE(cut, 1) << "no answer was running on the node that died";
  EXPECT_LE(cut, 8);  // at most those running on the dead node
  gateway.signal(SIGTERM);
  EXPECT_EQ(gateway.wait_exit(30s), 0) << gateway.log();
  std::remove(config.c_str());
}

// A model served from the registry follows its alias: a promotion switches versions without a
// restart (a stream running across the switch finishes), a version that cannot load leaves the
// one serving, and a rollback switches back. The eval gate refuses a version that fails the suite.
TEST(ServeCli, AServerFollowsTheVersionItsAliasNames) {
  const std::string state = temp_file("versions.db", ""), garbage = temp_file("garbage-v.gguf", "GGUF" + std::string(596, 'x'));  // a GGUF that cannot load
  const std::string other = temp_file("random.gguf", "");
  std::remove(state.c_str());
  auto synth = owl::testing::run_owl("synth --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 4 --n-ff 128 --type f32 --vocab-from " + kModel +
                                     " -o " + other);
  ASSERT_EQ(synth.exit_code, 0) << synth.out;
  const std::string store = " --state " + state;
  for (const std::string& file : {kModel, other, garbage}) {
    auto added = owl::testing::run_owl("models add stories " + file + store);
    ASSERT_EQ(added.exit_code, 0) << added.out;
  }
  // The gate: the random model fails the stories suite, so prod stays where it is.
  ASSERT_EQ(owl::testing::run_owl("models promote stories v1 --force" + store).exit_code, 0);
  auto refused = owl::testing::run_owl("models promote stories v2 -t 1 --eval " + std::string(OWL_SOURCE_DIR) +
                                       "/examples/eval/stories/suite.yaml --cache-dir /tmp/owl_serve_cli_gate_" + std::to_string(::getpid()) + store);
  EXPECT_EQ(refused.exit_code, 3) << refused.out;
  EXPECT_NE(refused.out.find("stories@prod stays v1: the candidate fails the suite's thresholds"), std::string::npos) << refused.out;
  std::filesystem::remove_all("/tmp/owl_serve_cli_gate_" + std::to_string(::getpid()));

  const std::string config = temp_file("registry.yaml", "models:\n  - {name: stories, registry: prod}\n");
  OwlProcess owl("serve --port 0 -t 1 --config " + config + store);
  ASSERT_TRUE(owl.wait_for_log("ready", 30s)) << owl.log();
  EXPECT_NE(owl.log().find("'stories' (stories@prod: v1)"), std::string::npos) << owl.log();
  httplib::Client c("127.0.0.1", owl.port());
  auto answer = [&] {
    auto res = c.Post("/v1/completions", R"({"model":"stories","prompt":"Once upon a time","max_tokens":12,"temperature":0})", "application/json");
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
    return res ? nlohmann::json::parse(res->body)["choices"][0]["text"].get<std::string>() : "";
  };
  const std::string first = answer();
  StreamOutcome across;
  std::thread long_stream([&] {
    httplib::Client s("127.0.0.1", owl.port());
    std::string body;
    auto res = s.Post("/v1/completions", R"({"model":"stories","prompt":"Once","max_tokens":1500,"ignore_eos":true,"stream":true})",
                      "application/json");
    across.status = res ? res->status : 0;
    across.done = res && res->body.find("data: [DONE]") != std::string::npos && res->body.find(R"(data: {"error")") == std::string::npos;
  });
  std::this_thread::sleep_for(100ms);
  ASSERT_EQ(owl::testing::run_owl("models promote stories v2 --force" + store).exit_code, 0);
  ASSERT_TRUE(owl.wait_for_log("now serving v2", 15s)) << owl.log();
  EXPECT_NE(answer(), first);  // another model answers
  long_stream.join();
  EXPECT_EQ(across.status, 200);
  EXPECT_TRUE(across.done) << "the stream running across the switch did not finish";
  ASSERT_EQ(owl::testing::run_owl("models promote stories v3 --force" + store).exit_code, 0);
  ASSERT_TRUE(owl.wait_for_log("version v3 failed to load, v2 keeps serving", 15s)) << owl.log();
  const std::string second = answer();
  EXPECT_NE(second, first);
  auto back = owl::testing::run_owl("models rollback stories" + store);  // v3 -> v2: what serves already
  ASSERT_EQ(back.exit_code, 0) << back.out;
  back = owl::testing::run_owl("models rollback stories" + store);       // v2 -> v1
  ASSERT_EQ(back.exit_code, 0) << back.out;
  EXPECT_NE(back.out.find("stories@prod: v2 -> v1"), std::string::npos) << back.out;
  ASSERT_TRUE(owl.wait_for_log("now serving v1", 15s)) << owl.log();
  EXPECT_EQ(answer(), first);
  owl.signal(SIGTERM);
  EXPECT_EQ(owl.wait_exit(30s), 0) << owl.log();
  for (const std::string& f : {config, state, state + "-wal", state + "-shm", garbage, other}) std::remove(f.c_str());
}

// A route's canary answers exactly its weight of the requests; its shadow gets a copy of every
// answered request, whose comparison is logged while the client has only the route's answer.
TEST(ServeCli, ACanaryTakesItsShareAndAShadowSeesEveryRequest) {
  const std::string other = temp_file("canary-random.gguf", "");
  auto synth = owl::testing::run_owl("synth --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 4 --n-ff 128 --type f32 --vocab-from " + kModel +
                                     " -o " + other);
  ASSERT_EQ(synth.exit_code, 0) << synth.out;
  const std::string config = temp_file("canary.yaml", "models:\n  - {name: small, path: " + kModel + "}\n  - {name: other, path: " + other +
                                                      "}\nroutes:\n  - {name: auto, cascade: [small], canary: {model: other, weight: 25}, shadow: other}\n");
  OwlProcess owl("serve --port 0 -t 1 --config " + config);
  ASSERT_TRUE(owl.wait_for_log("ready", 30s)) << owl.log();
  httplib::Client c("127.0.0.1", owl.port());
  std::map<std::string, int> by;
  for (int i = 0; i < 8; ++i) {
    auto res = c.Post("/v1/completions", R"({"model":"auto","prompt":"Once upon a time","max_tokens":6,"temperature":0})", "application/json");
    ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
    ++by[res->get_header_value("x-owl-route") + ":" + res->get_header_value("x-owl-model")];
  }
  EXPECT_EQ(by["canary:other"], 2);
  EXPECT_EQ(by["cascade:small"], 6);
  // Eight shadow lines: the small model's answers differ from the random model's.
  ASSERT_TRUE(owl.wait_for_log(R"("event":"shadow")", 10s)) << owl.log();
  for (int i = 0; i < 200; ++i) {
    const std::string log = owl.log();
    int n = 0;
    for (size_t at = 0; (at = log.find(R"("event":"shadow")", at)) != std::string::npos; ++at) ++n;
    if (n == 8) break;
    std::this_thread::sleep_for(50ms);
  }
  const std::string log = owl.log();
  int shadows = 0, same = 0;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(R"("event":"shadow")") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line);
    ++shadows;
    EXPECT_EQ(j["model"], "other");
    EXPECT_EQ(j["route"], "auto");
    EXPECT_GE(j["latency_ms"].get<double>(), 0);
    if (j["same_text"].get<bool>()) {
      ++same;
      EXPECT_EQ(j["answered_by"], "other");  // the canary's own answers
      EXPECT_EQ(j["word_overlap"], 1.0);
    }
  }
  EXPECT_EQ(shadows, 8) << log;
  EXPECT_EQ(same, 2) << log;
  owl.signal(SIGTERM);
  EXPECT_EQ(owl.wait_exit(30s), 0) << owl.log();
  for (const std::string& f : {config, other}) std::remove(f.c_str());
}

TEST(ServeCli, ASecondServerOnTheSamePortFails) {
  OwlProcess first("serve --port 0 -m " + kModel);
  ASSERT_TRUE(first.wait_for_log("ready", 30s)) << first.log();
  OwlProcess second("serve --port " + std::to_string(first.port()) + " -m " + kModel);
  EXPECT_EQ(second.wait_exit(20s), 1) << second.log();
  EXPECT_NE(second.log().find("address already in use"), std::string::npos) << second.log();
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait_exit(20s), 0) << first.log();
}

TEST(ServeCli, ASignalStopsItAtEveryMoment) {
  {  // at once, before the model is ready
    OwlProcess owl("serve --port 0 -m " + kModel);
    owl.signal(SIGINT);
    const auto code = owl.wait_exit(10s);
    ASSERT_TRUE(code.has_value()) << owl.log();
    EXPECT_NE(*code, 0) << owl.log();
  }
  {  // while loading: between "listening" and "ready"
    OwlProcess owl("serve --port 0 -m " + kModel);
    ASSERT_TRUE(owl.wait_for_log("listening", 30s)) << owl.log();
    owl.signal(SIGTERM);
    ASSERT_TRUE(owl.wait_exit(10s).has_value()) << owl.log();
  }
  {  // ready: a clean drain, exit 0
    OwlProcess owl("serve --port 0 -m " + kModel);
    ASSERT_TRUE(owl.wait_for_log("ready", 30s)) << owl.log();
    owl.signal(SIGINT);
    EXPECT_EQ(owl.wait_exit(20s), 0) << owl.log();
    EXPECT_NE(owl.log().find("SIGINT received: draining"), std::string::npos) << owl.log();
    EXPECT_NE(owl.log().find("stopped"), std::string::npos) << owl.log();
  }
}

// Sends a streamed completion of 2000 tokens and leaves the connection open; returns the socket.
int start_long_request(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return -1;
  const std::string body = R"({"prompt":"Once upon a time","max_tokens":2000,"ignore_eos":true,"stream":true})";
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) return -1;
  char first[64];
  if (::recv(fd, first, sizeof first, 0) <= 0) return -1;  // generation has started
  return fd;
}

TEST(ServeCli, ASecondSignalWhileDrainingExitsAtOnce) {
  OwlProcess owl("serve --port 0 -np 1 -t 1 --drain-timeout 600 -m " + kModel);
  ASSERT_TRUE(owl.wait_for_log("ready", 30s)) << owl.log();
  const int fd = start_long_request(owl.port());
  ASSERT_GE(fd, 0);
  owl.signal(SIGTERM);
  ASSERT_TRUE(owl.wait_for_log("draining", 10s)) << owl.log();
  std::this_thread::sleep_for(300ms);
  owl.signal(SIGTERM);
  EXPECT_EQ(owl.wait_exit(10s), 128 + SIGTERM) << owl.log();
  EXPECT_NE(owl.log().find("SIGTERM received again while draining"), std::string::npos) << owl.log();
  ::close(fd);
}

// The report this answers: eight seeded requests sent one at a time and then together, and one
// text parted from its solo run. With --deterministic none may.
TEST(ServeCli, DeterministicSeededAnswersDoNotDependOnTheBatch) {
  const std::string q4_0 = std::string(OWL_SHARED_DIR) + "/models/stories260K.q4_0.gguf";
  OwlProcess owl("serve --port 0 -np 8 -t 2 --deterministic -m " + q4_0);
  ASSERT_TRUE(owl.wait_for_log("ready", 30s)) << owl.log();
  auto ask = [&](int i) {
    httplib::Client c("127.0.0.1", owl.port());
    c.set_read_timeout(60, 0);
    const nlohmann::json body = {{"prompt", "Once upon a time, a girl named " + std::string(1, static_cast<char>('A' + i))},
                                 {"max_tokens", 48}, {"temperature", 1.0}, {"seed", 100 + i}, {"ignore_eos", true},
                                 {"logprobs", 1}};
    auto res = c.Post("/v1/completions", body.dump(), "application/json");
    return res && res->status == 200 ? nlohmann::json::parse(res->body)["choices"][0] : nlohmann::json();
  };
  std::vector<nlohmann::json> alone, together;
  for (int i = 0; i < 8; ++i) alone.push_back(ask(i));
  std::vector<std::future<nlohmann::json>> running;
  for (int i = 0; i < 8; ++i) running.push_back(std::async(std::launch::async, ask, i));
  for (auto& r : running) together.push_back(r.get());
  for (int i = 0; i < 8; ++i) {
    ASSERT_FALSE(alone[i].is_null()) << owl.log();
    EXPECT_EQ(together[i]["text"], alone[i]["text"]) << "request " << i;
    EXPECT_EQ(together[i]["logprobs"]["token_logprobs"], alone[i]["logprobs"]["token_logprobs"]) << "request " << i;
  }
  owl.signal(SIGTERM);
  EXPECT_EQ(owl.wait_exit(20s), 0) << owl.log();
}

}  // namespace
