// The router's added latency: the same chat request (the embedded model, one token) sent to the
// model directly, through a one-step route and through a two-step cascade that holds the answer,
// interleaved on one in-process server; and the detectors' time on prompts of several sizes.
// Prints figures; never asserts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "router/local_provider.h"
#include "router/route_provider.h"
#include "router/sensitive.h"
#include "serve/server.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace owl;
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 300;
  auto model = model::load_model(std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf");
  if (!model) return std::fprintf(stderr, "%s\n", model.message().c_str()), 1;
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  auto chat_template = tmpl::Template::parse(*tmpl::builtin_format("chatml"));
  serve::Metrics metrics;
  auto engine = engine::Engine::make(**model, *tok, &metrics, {.n_parallel = 2, .n_ctx = 512, .n_threads = 1});
  if (!engine) return std::fprintf(stderr, "%s\n", engine.message().c_str()), 1;
  auto small = std::make_shared<router::LocalProvider>(router::LocalModel{
      .id = "small", .model = model->get(), .tokenizer = &*tok, .chat_template = &*chat_template, .engine = engine->get()});
  router::ModelSpec spec{.name = "small", .is_private = true, .path = "stories260K.gguf"};
  auto detector = std::make_shared<const router::SensitiveDetector>(*router::SensitiveDetector::make({}));
  auto registry = std::make_shared<serve::ModelRegistry>();
  (void)registry->add(small);
  const router::RouteMember member{.provider = small.get(), .spec = &spec};
  router::RouteSpec one{.name = "one", .cascade = {{.model = "small"}}};
  router::RouteSpec two{.name = "two", .cascade = {{.model = "small", .escalate_if = {.mean_logprob_below = -1000}}, {.model = "small"}}};
  for (const auto& r : {one, two}) {
    router::RouteSetup setup{.spec = r, .detector = detector};
    for (size_t i = 0; i < r.cascade.size(); ++i) setup.cascade.push_back(member);
    auto route = router::RouteProvider::make(setup, 0);
    if (!route) return std::fprintf(stderr, "%s\n", route.message().c_str()), 1;
    (void)registry->add(std::shared_ptr<router::Provider>(std::move(route.value())));
  }
  serve::ServerOptions options{.host = "127.0.0.1", .port = 0};
  options.log = [](const std::string&) {};
  serve::Server server(options, metrics);
  auto port = server.bind();
  server.start();
  server.set_models(registry);
  httplib::Client client("127.0.0.1", *port);
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  const char* targets[] = {"small", "one", "two"};
  std::vector<double> ms[3];
  for (int i = 0; i < rounds + 20; ++i) {
    for (int t = 0; t < 3; ++t) {
      const nlohmann::json body = {{"model", targets[t]}, {"max_tokens", 1}, {"temperature", 0},
                                   {"messages", {{{"role", "user"}, {"content", "Once upon a time there was a little dog"}}}}};
      const auto start = Clock::now();
      auto res = client.Post("/v1/chat/completions", body.dump(), "application/json");
      const double elapsed = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (!res || res->status != 200) return std::fprintf(stderr, "request to %s failed\n", targets[t]), 1;
      if (i >= 20) ms[t].push_back(elapsed);  // the first rounds warm up
    }
  }
  std::printf("chat request, 1 token, %d interleaved rounds (ms)\n%-28s %8s %8s %12s\n", rounds, "target", "p50", "p99", "p50 added");
  const char* labels[] = {"model directly", "route, one step", "cascade, answer held"};
  for (int t = 0; t < 3; ++t) {
    std::printf("%-28s %8.3f %8.3f %12.3f\n", labels[t], percentile(ms[t], 0.5), percentile(ms[t], 0.99),
                percentile(ms[t], 0.5) - percentile(ms[0], 0.5));
  }
  server.stop();
  std::printf("\ndetectors (all built-ins) per prompt\n%-12s %12s\n", "bytes", "us");
  const std::string sentence = "The quick brown fox met a dog called Max near the old mill on the 12th of May. ";
  for (size_t size : {256, 2048, 16384, 131072}) {
    std::string text;
    while (text.size() < size) text += sentence;
    text.resize(size);
    const int reps = static_cast<int>(std::max<size_t>(10, 2'000'000 / size));
    const auto start = Clock::now();
    size_t found = 0;
    for (int r = 0; r < reps; ++r) found += detector->fired(text).size();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count() / reps;
    std::printf("%-12zu %12.1f%s\n", size, us, found ? " (fired)" : "");
  }
  return 0;
}
