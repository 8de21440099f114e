// Per-request LoRA adapters through the server: a model id BASE:NAME or llama.cpp's `lora` field
// picks them, an answer equals the engine's with the same adapter, adapters load and unload while
// the server runs (a request keeps the adapter it started with), requests of different adapters
// share engine steps and each gets its own adapter's answer, and mistakes get OpenAI's errors.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <future>
#include <map>

#include <unistd.h>

#include "engine/session.h"
#include "gguf/gguf.h"
#include "model/forward.h"
#include "serve/server_fixture.h"

namespace owl::serve {
namespace {

const std::string kReference = std::string(OWL_SHARED_DIR) + "/reference/lora/stories260K.lora-r4-all.gguf";
const std::string kPrompt = "Once upon a time";

// A file removed when the process ends.
struct TempFile {
  std::string path;
  ~TempFile() { std::remove(path.c_str()); }
};

// A second adapter, different from the reference: its A matrices with their values reversed.
// Written once per process.
const std::string& variant_adapter() {
  static const TempFile file{[] {
    const std::string out = "/tmp/owl_lora_server_test_" + std::to_string(::getpid()) + ".gguf";
    auto reference = gguf::GgufFile::open(kReference);
    if (!reference) throw std::runtime_error(reference.message());
    gguf::GgufWriter w;
    w.copy_metadata(*reference);
    std::vector<std::vector<uint8_t>> data;  // the writer borrows them until write()
    data.reserve(reference->tensors().size());
    for (const gguf::TensorInfo& t : reference->tensors()) {
      if (t.type != gguf::TensorType::F32) throw std::runtime_error("the reference adapter is not F32: " + t.name);
      std::vector<uint8_t>& bytes = data.emplace_back(t.data, t.data + t.n_bytes);
      if (t.name.ends_with(".lora_a")) {
        auto* f = reinterpret_cast<float*>(bytes.data());
        std::reverse(f, f + t.n_elements());
      }
      if (auto s = w.add_tensor(t.name, t.type, std::span<const int64_t>(t.ne, static_cast<size_t>(t.n_dims)), bytes); !s) {
        throw std::runtime_error(s.message());
      }
    }
    if (auto s = w.write(out); !s) throw std::runtime_error(s.message());
    return out;
  }()};
  return file.path;
}

class LoraServer : public ServerTest {
 protected:
  // Serves with adapters "a" (the reference) and "b" (the variant) loaded.
  void start_with_adapters(engine::EngineOptions engine_options = {.n_parallel = 2, .n_ctx = 256, .n_threads = 2},
                           ServerOptions options = {.adapter_loading = true}) {
    start(engine_options, options);
    auto a = catalog->load("a", kReference, 1.0f);
    ASSERT_TRUE(a.ok()) << a.message();
    auto b = catalog->load("b", variant_adapter(), 1.0f);
    ASSERT_TRUE(b.ok()) << b.message();
    id_a = a->id;
    id_b = b->id;
  }
  Json completion_body(const std::string& model, const std::string& prompt, int max_tokens = 24) {
    return {{"model", model}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  }
  // The text of a completion that must succeed.
  std::string text(const Json& body, httplib::Client* c = nullptr) {
    auto res = (c ? c : client.get())->Post("/v1/completions", dump_json(body), "application/json");
    if (!res || res->status != 200) {
      ADD_FAILURE() << (res ? res->body : "no response");
      return "";
    }
    const Json j = Json::parse(res->body);
    EXPECT_EQ(j["model"], body["model"]);
    return j["choices"][0]["text"].get<std::string>();
  }
  // What the engine alone generates from the prompt with `adapters`, greedy.
  std::string engine_text(const std::string& prompt, int max_tokens, std::shared_ptr<const model::AdapterSet> adapters) {
    const auto& s = owl::testing::stories();
    auto ctx = model::make_context(*s.model, {.n_ctx = 256, .n_seq = 1, .n_batch = 160, .n_threads = 2});
    EXPECT_TRUE(ctx.ok()) << ctx.message();
    engine::Session session(*s.model, *s.tokenizer, **ctx);
    engine::SequenceRequest request;
    request.prompt = s.tokenizer->tokenize(prompt, {.add_special = true, .parse_special = true});
    request.params.sampling.temperature = 0;
    request.params.max_tokens = max_tokens;
    request.adapters = std::move(adapters);
    std::string out;
    auto done = session.generate(std::move(request), [&](std::string_view piece, const sample::Sampled&) {
      out += piece;
      return true;
    });
    EXPECT_TRUE(done.ok()) << done.message();
    return out;
  }
  std::shared_ptr<const model::AdapterSet> set_of(const std::string& name, float scale) {
    auto set = std::make_shared<model::AdapterSet>();
    set->adapters.emplace_back(catalog->find(name)->adapter, scale);
    return set;
  }
  // An API error's object, checking its shape.
  Json expect_error(const httplib::Result& res, int status, const std::string& contains) {
    if (!res) {
      ADD_FAILURE() << "no response";
      return Json();
    }
    EXPECT_EQ(res->status, status) << res->body;
    const Json j = Json::parse(res->body);
    EXPECT_TRUE(j["error"].is_object()) << res->body;
    EXPECT_TRUE(j["error"]["message"].is_string()) << res->body;
    EXPECT_TRUE(j["error"].contains("type") && j["error"].contains("param") && j["error"].contains("code")) << res->body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(contains), std::string::npos) << res->body;
    return j["error"];
  }

  int64_t id_a = -1, id_b = -1;
};

TEST_F(LoraServer, AnAdapterIsAModelIdWhoseAnswerIsTheEnginesWithIt) {
  start_with_adapters();
  auto res = client->Get("/v1/models");
  ASSERT_TRUE(res);
  std::map<std::string, Json> cards;
  const Json listed = Json::parse(res->body);
  for (const Json& m : listed["data"]) cards[m["id"]] = m;
  ASSERT_EQ(cards.size(), 3u) << res->body;
  EXPECT_EQ(cards["stories260K:a"]["parent"], "stories260K");
  EXPECT_EQ(cards["stories260K:a"]["root"], kReference);
  EXPECT_EQ(cards["stories260K:b"]["root"], variant_adapter());
  auto card = client->Get("/v1/models/stories260K:b");
  ASSERT_TRUE(card);
  EXPECT_EQ(Json::parse(card->body)["id"], "stories260K:b");

  const std::string base = text(completion_body("stories260K", kPrompt));
  const std::string a = text(completion_body("stories260K:a", kPrompt));
  const std::string b = text(completion_body("stories260K:b", kPrompt));
  EXPECT_NE(a, base);
  EXPECT_NE(b, base);
  EXPECT_NE(a, b);
  EXPECT_EQ(base, engine_text(kPrompt, 24, nullptr));
  EXPECT_EQ(a, engine_text(kPrompt, 24, set_of("a", 1.0f)));
  EXPECT_EQ(b, engine_text(kPrompt, 24, set_of("b", 1.0f)));
  // Chat through the adapter too; the request log names the model id asked for.
  auto chat = post("/v1/chat/completions", [&] {
    Json body = chat_body(kPrompt);
    body["model"] = "stories260K:a";
    return body;
  }());
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 200) << chat->body;
  EXPECT_EQ(Json::parse(chat->body)["model"], "stories260K:a");
  const std::vector<Json> log = wait_log(4);
  EXPECT_EQ(log[1]["model"], "stories260K:a");
}

TEST_F(LoraServer, TheLoraFieldPicksAdaptersByIdAndScaleZeroIsTheBase) {
  start_with_adapters();
  const std::string base = text(completion_body("stories260K", kPrompt));
  const std::string a = text(completion_body("stories260K:a", kPrompt));
  auto with_lora = [&](const std::string& model, Json lora) {
    Json body = completion_body(model, kPrompt);
    body["lora"] = std::move(lora);
    return body;
  };
  EXPECT_EQ(text(with_lora("stories260K", {{{"id", id_a}, {"scale", 1.0}}})), a);
  EXPECT_EQ(text(with_lora("stories260K", {{{"id", id_a}, {"scale", 0.0}}})), base);
  EXPECT_EQ(text(with_lora("stories260K:a", {{{"id", id_a}, {"scale", 0.0}}})), base);  // the field sets the named one's scale
  const std::string half = text(with_lora("stories260K", {{{"id", id_a}, {"scale", 0.5}}}));
  EXPECT_EQ(half, engine_text(kPrompt, 24, set_of("a", 0.5f)));
  EXPECT_NE(half, a);
  const std::string both = text(with_lora("stories260K", {{{"id", id_a}, {"scale", 0.5}}, {{"id", id_b}, {"scale", 0.5}}}));
  auto set = std::make_shared<model::AdapterSet>();
  set->adapters = {{catalog->find("a")->adapter, 0.5f}, {catalog->find("b")->adapter, 0.5f}};
  EXPECT_EQ(both, engine_text(kPrompt, 24, set));

  expect_error(post("/v1/completions", with_lora("stories260K", {{{"id", 99}, {"scale", 1.0}}})), 400,
               "'lora' names adapter id 99, which the model 'stories260K' does not serve");
  expect_error(post("/v1/completions", with_lora("stories260K", "a")), 400, "'lora' must be an array");
  expect_error(post("/v1/completions", with_lora("stories260K", {{{"scale", 1.0}}})), 400, "'lora[0].id' is missing");
  expect_error(post("/v1/completions", with_lora("stories260K", {{{"id", id_a}, {"scale", 1000}}})), 400,
               "'lora[0]': 'scale' is 1000, outside [-100, 100]");
  expect_error(post("/v1/completions", with_lora("stories260K", {{{"id", id_a}}, {{"id", id_a}}})), 400,
               "names adapter id 0 twice");
}

TEST_F(LoraServer, AdaptersLoadAndUnloadWhileServing) {
  start({.n_parallel = 2, .n_ctx = 256, .n_threads = 2}, {.adapter_loading = true});
  auto list = [&] {
    auto res = client->Get("/lora-adapters");
    EXPECT_TRUE(res && res->status == 200);
    return res ? Json::parse(res->body) : Json();
  };
  EXPECT_EQ(list(), Json::array());
  const std::string base = text(completion_body("stories260K", kPrompt));

  auto loaded = post("/lora-adapters", {{"name", "b"}, {"path", variant_adapter()}});
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->status, 200) << loaded->body;
  const Json entry = Json::parse(loaded->body);
  EXPECT_EQ(entry["model"], "stories260K:b");
  EXPECT_EQ(entry["path"], variant_adapter());
  EXPECT_EQ(entry["scale"], 1.0);
  const std::string b = text(completion_body("stories260K:b", kPrompt));
  EXPECT_NE(b, base);
  ASSERT_TRUE(post("/lora-adapters", {{"name", "a"}, {"path", kReference}, {"scale", 0.5}}));
  const Json adapters = list();
  ASSERT_EQ(adapters.size(), 2u) << adapters.dump();
  EXPECT_EQ(adapters[0]["id"], entry["id"]);
  EXPECT_EQ(adapters[1]["path"], kReference);
  EXPECT_EQ(adapters[1]["scale"], 0.5);
  EXPECT_EQ(text(completion_body("stories260K:a", kPrompt)), engine_text(kPrompt, 24, set_of("a", 0.5f)));

  // llama-server's form sets the scale a model id runs its adapter at.
  auto scaled = post("/lora-adapters", Json::array({{{"id", entry["id"]}, {"scale", 0.0}}}));
  ASSERT_TRUE(scaled);
  EXPECT_EQ(scaled->status, 200) << scaled->body;
  EXPECT_EQ(text(completion_body("stories260K:b", kPrompt)), base);
  expect_error(post("/lora-adapters", Json::array({{{"id", 77}, {"scale", 1.0}}})), 400, "no adapter has the id 77");

  auto unloaded = post("/lora-adapters", {{"name", "b"}, {"unload", true}});
  ASSERT_TRUE(unloaded);
  EXPECT_EQ(unloaded->status, 200) << unloaded->body;
  const Json gone = expect_error(post("/v1/completions", completion_body("stories260K:b", kPrompt)), 404,
                                 "the model 'stories260K:b' does not exist");
  EXPECT_EQ(gone["code"], "model_not_found");
  EXPECT_EQ(gone["param"], "model");
  auto deleted = client->Delete("/lora-adapters/a");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->status, 200) << deleted->body;
  expect_error(client->Delete("/lora-adapters/a"), 404, "the model 'stories260K:a' does not exist");
  EXPECT_EQ(list(), Json::array());
  EXPECT_EQ(text(completion_body("stories260K", kPrompt)), base);
  // A reload of a name is a new adapter: its id is new, and its answers are its own.
  auto again = post("/lora-adapters", {{"name", "b"}, {"path", kReference}});
  ASSERT_TRUE(again);
  EXPECT_GT(Json::parse(again->body)["id"].get<int64_t>(), entry["id"].get<int64_t>());
  EXPECT_EQ(text(completion_body("stories260K:b", kPrompt)), engine_text(kPrompt, 24, set_of("b", 1.0f)));
}

// A request resolves its adapters when it is submitted: unloaded while it waits for a slot, the
// adapter stays alive for it, gives it the adapter's answer, and is freed once it ends.
TEST_F(LoraServer, ARequestKeepsTheAdapterItStartedWith) {
  start_with_adapters({.n_parallel = 1, .n_ctx = 2048, .n_threads = 2});
  Json b_body = chat_body(kPrompt, 32);
  b_body["model"] = "stories260K:b";
  const Json reference = Json::parse(post("/v1/chat/completions", b_body)->body);
  const std::string expected = reference["choices"][0]["message"]["content"];
  std::weak_ptr<const model::Adapter> b = catalog->find("b")->adapter;

  // A long answer holds the only slot, so the request through b waits in the queue.
  std::promise<void> blocker_started;
  auto blocker = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    Json body = chat_body("Tell me a long story", 1800);
    body["ignore_eos"] = true;
    body["stream"] = true;
    bool first = true;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = dump_json(body);
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (first && std::string_view(data, n).find("\"content\"") != std::string_view::npos) {
        first = false;
        blocker_started.set_value();
      }
      return true;
    };
    c.send(req);
  });
  blocker_started.get_future().wait();
  std::promise<void> submitted;
  std::string streamed;
  auto waiting = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    Json body = b_body;
    body["stream"] = true;
    bool first = true;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = dump_json(body);
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      streamed.append(data, n);
      if (first) submitted.set_value();  // the role chunk: sent once the request was submitted
      first = false;
      return true;
    };
    c.send(req);
  });
  submitted.get_future().wait();
  auto unloaded = post("/lora-adapters", {{"name", "b"}, {"unload", true}});
  ASSERT_TRUE(unloaded);
  EXPECT_EQ(unloaded->status, 200);
  EXPECT_FALSE(b.expired()) << "the waiting request holds the adapter";
  EXPECT_EQ(post("/v1/chat/completions", b_body)->status, 404);  // new requests cannot have it
  blocker.get();
  waiting.get();
  std::string text;
  for (const std::string& event : sse_events(streamed)) {
    if (event == "[DONE]") continue;
    const Json chunk = Json::parse(event);
    if (!chunk["choices"].empty()) text += chunk["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text, expected);
  for (int i = 0; i < 100 && !b.expired(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(b.expired()) << "the adapter outlived its last request";
}

// Requests of two adapters and of the base model at once share the engine's steps, and each gets
// the answer it gets alone.
TEST_F(LoraServer, DifferentAdaptersShareStepsAndEachGetsItsOwnAnswer) {
  start_with_adapters({.n_parallel = 6, .n_ctx = 256, .n_threads = 2, .batch_invariant = true});
  const std::vector<std::string> models = {"stories260K", "stories260K:a", "stories260K:b"};
  const std::vector<std::string> prompts = {kPrompt, "The little dog"};
  // Long enough answers that the six overlap for most of their tokens.
  auto body = [&](const std::string& model, const std::string& prompt) {
    Json b = completion_body(model, prompt, 160);
    b["ignore_eos"] = true;
    return b;
  };
  std::map<std::pair<std::string, std::string>, std::string> alone;
  for (const auto& m : models) {
    for (const auto& p : prompts) alone[{m, p}] = text(body(m, p));
  }
  auto answer = [&](size_t model, const std::string& prompt) { return alone[std::make_pair(models[model], prompt)]; };
  EXPECT_NE(answer(1, kPrompt), answer(0, kPrompt));
  EXPECT_NE(answer(2, kPrompt), answer(1, kPrompt));
  const double mixed_before = metric("owl_engine_mixed_adapter_steps_total");
  EXPECT_EQ(mixed_before, 0);
  for (int round = 0; round < 3; ++round) {
    std::vector<std::future<std::string>> answers;
    std::atomic<int> ready{0};
    for (const auto& m : models) {
      for (const auto& p : prompts) {
        answers.push_back(std::async(std::launch::async, [&, m, p] {
          httplib::Client c("127.0.0.1", port_);
          c.set_read_timeout(60, 0);
          ++ready;
          while (ready.load() < 6) std::this_thread::yield();
          return text(body(m, p), &c);
        }));
      }
    }
    size_t i = 0;
    for (const auto& m : models) {
      for (const auto& p : prompts) EXPECT_EQ(answers[i++].get(), alone[std::make_pair(m, p)]) << m << " / " << p;
    }
  }
  EXPECT_GT(metric("owl_engine_mixed_adapter_steps_total"), mixed_before);
}

TEST_F(LoraServer, MistakesGetOpenAIsErrorsAndTheServerKeepsServing) {
  start_with_adapters();
  const Json unknown = expect_error(post("/v1/completions", completion_body("stories260K:nope", kPrompt)), 404,
                                    "the model 'stories260K:nope' does not exist");
  EXPECT_EQ(unknown["code"], "model_not_found");
  EXPECT_NE(unknown["message"].get<std::string>().find("'stories260K:a'"), std::string::npos) << unknown.dump();
  expect_error(client->Get("/v1/models/stories260K:nope"), 404, "stories260K:nope");
  expect_error(post("/v1/embeddings", {{"model", "stories260K:a"}, {"input", "x"}}), 400, "is a LoRA adapter of 'stories260K'");

  const std::string model_file = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";
  const Json not_adapter = expect_error(post("/lora-adapters", {{"name", "c"}, {"path", model_file}}), 400, model_file);
  EXPECT_NE(not_adapter["message"].get<std::string>().find("this is not a LoRA adapter"), std::string::npos);
  expect_error(post("/lora-adapters", {{"name", "c"}, {"path", "/nonexistent/c.gguf"}}), 400, "/nonexistent/c.gguf");
  expect_error(post("/lora-adapters", {{"name", "c d"}, {"path", kReference}}), 400, "'c d' is not an adapter name");
  expect_error(post("/lora-adapters", {{"name", "latest"}, {"path", kReference}}), 400, "'latest' is not an adapter name");
  expect_error(post("/lora-adapters", {{"name", "c"}, {"file", kReference}}), 400, "unknown field 'file'");
  expect_error(post("/lora-adapters", {{"name", "c"}}), 400, "'path'");
  expect_error(post("/lora-adapters", {{"name", "c"}, {"path", kReference}, {"model", "gpt-4"}}), 404, "'gpt-4' does not exist");
  expect_error(post("/lora-adapters", {{"name", "zz"}, {"unload", true}}), 404, "the model 'stories260K:zz' does not exist");
  expect_error(post("/lora-adapters", {{"name", "zz"}, {"unload", "yes"}}), 400, "'unload' must be a boolean");
  auto wrong_method = client->Put("/lora-adapters", "{}", "application/json");
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(text(completion_body("stories260K:a", kPrompt)), engine_text(kPrompt, 24, set_of("a", 1.0f)));
}

TEST_F(LoraServer, LoadingNeedsTheRuntimeOption) {
  start_with_adapters({.n_parallel = 2, .n_ctx = 256, .n_threads = 2}, {});
  const Json refused = expect_error(post("/lora-adapters", {{"name", "c"}, {"path", kReference}}), 403, "--lora-runtime");
  EXPECT_EQ(refused["code"], "adapter_loading_disabled");
  expect_error(post("/lora-adapters", {{"name", "a"}, {"unload", true}}), 403, "--lora-runtime");
  expect_error(client->Delete("/lora-adapters/a"), 403, "--lora-runtime");
  auto listed = client->Get("/lora-adapters");
  ASSERT_TRUE(listed);
  EXPECT_EQ(Json::parse(listed->body).size(), 2u);
  // Scales are llama-server's, without the option.
  auto scaled = post("/lora-adapters", Json::array({{{"id", id_a}, {"scale", 0.25}}}));
  ASSERT_TRUE(scaled);
  EXPECT_EQ(scaled->status, 200) << scaled->body;
  EXPECT_EQ(catalog->find("a")->scale, 0.25f);
}

// Ollama's clients name the adapter as a tag of the base model.
TEST_F(LoraServer, OllamasApiPicksAdaptersByModelName) {
  start_with_adapters();
  auto tags = client->Get("/api/tags");
  ASSERT_TRUE(tags);
  std::vector<std::string> names;
  const Json listed = Json::parse(tags->body);
  for (const Json& m : listed["models"]) names.push_back(m["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"stories260K:latest", "stories260K:a", "stories260K:b"}));
  const std::string a = text(completion_body("stories260K:a", kPrompt));
  auto res = post("/api/generate", {{"model", "stories260K:a"}, {"prompt", kPrompt}, {"raw", true}, {"stream", false},
                                    {"options", {{"temperature", 0}, {"num_predict", 24}}}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(Json::parse(res->body)["response"], a);
  EXPECT_EQ(Json::parse(res->body)["model"], "stories260K:a");
  auto missing = post("/api/generate", {{"model", "stories260K:zz"}, {"prompt", kPrompt}});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

}  // namespace
}  // namespace owl::serve
