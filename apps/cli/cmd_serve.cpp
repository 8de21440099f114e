// owl serve: the OpenAI-compatible server with continuous batching, metrics and a chat page.
// The socket is bound first (so /health answers "loading" while the model loads); SIGTERM or
// SIGINT drains: new requests get 503, running ones finish (cancelled after --drain-timeout),
// then the process exits 0.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <pthread.h>

#include "chat_template.h"
#include "commands.h"
#include "engine/engine.h"
#include "router/local_provider.h"
#include "serve/server.h"

namespace owl::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string alias;
  std::string host = "127.0.0.1";
  int port = 8080;
  engine::EngineOptions engine;
  std::string chat_template_file;
  std::string chat_format = "chatml";
  size_t max_body = size_t{1} << 20;
  bool log_content = false;
  double drain_timeout_s = 30;
};

// Blocks SIGTERM/SIGINT in every thread started after this, so that wait_for_signal gets them.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return set;
}

int fail(serve::Server& server, const std::string& message) {
  fmt::print(stderr, "owl serve: {}\n", message);
  server.stop();
  return 1;
}

int run_serve(const ServeArgs& args) {
  const sigset_t stop_signals = block_stop_signals();
  serve::Metrics metrics;
  serve::ServerOptions options{.host = args.host, .port = args.port, .max_body_bytes = args.max_body,
                               .log_content = args.log_content,
                               .http_threads = args.engine.n_parallel + args.engine.max_queue + 16};
  serve::Server server(options, metrics);
  auto port = server.bind();
  if (!port) return fmt::print(stderr, "owl serve: {}\n", port.message()), 1;
  server.start();
  fmt::print(stderr, "owl serve: listening on http://{}:{}/ (loading {})\n", args.host, *port, args.model);

  const auto load_start = engine::Clock::now();
  auto model = model::load_model(args.model);
  if (!model) return fail(server, model.message());
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fail(server, tok.message());
  auto source = choose_chat_template(args.chat_template_file, args.chat_format, (*model)->file, "owl serve");
  if (!source) return fail(server, source.message());
  auto chat_template = tmpl::Template::parse(*source);
  if (!chat_template) return fail(server, fmt::format("chat template: {}", chat_template.message()));
  auto engine = engine::Engine::make(**model, *tok, &metrics, args.engine);
  if (!engine) return fail(server, engine.message());
  metrics.set_model_load_seconds(std::chrono::duration<double>(engine::Clock::now() - load_start).count());

  const std::string name = args.alias.empty() ? std::filesystem::path(args.model).stem().string() : args.alias;
  auto models = std::make_shared<serve::ModelRegistry>();
  if (auto s = models->add(std::make_shared<router::LocalProvider>(router::LocalModel{
          .id = name, .created = static_cast<int64_t>(std::time(nullptr)), .model = model->get(), .tokenizer = &*tok,
          .chat_template = &*chat_template, .engine = engine->get()}));
      !s) {
    return fail(server, s.message());
  }
  server.set_models(models);
  fmt::print(stderr, "owl serve: ready: model '{}', {} sequences of {} tokens; chat page and API at http://{}:{}/\n",
             name, args.engine.n_parallel, (*engine)->n_ctx(), args.host, *port);

  int signal = 0;
  sigwait(&stop_signals, &signal);
  fmt::print(stderr, "owl serve: {} received: draining\n", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  server.drain();
  (*engine)->stop(false);
  const auto drain = std::chrono::milliseconds(static_cast<int64_t>(args.drain_timeout_s * 1000));
  if (!(*engine)->wait_idle(drain)) {
    fmt::print(stderr, "owl serve: cancelling the requests still running after {} s\n", args.drain_timeout_s);
    (*engine)->stop(true);
    (*engine)->wait_idle(std::chrono::seconds(5));
  }
  server.wait_streams(std::chrono::seconds(5));
  server.stop();
  engine->reset();
  fmt::print(stderr, "owl serve: stopped\n");
  return 0;
}

}  // namespace

Command register_serve(CLI::App& root) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* app = root.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API, with a chat page at /");
  app->add_option("-m,--model", args->model, "GGUF model file")->required();
  app->add_option("--alias", args->alias, "Model id the API reports and accepts (default: the file name without .gguf)");
  app->add_option("--host", args->host, "Address to listen on")->capture_default_str();
  app->add_option("--port", args->port, "Port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  app->add_option("--parallel", args->engine.n_parallel, "Sequences computed together at most")->capture_default_str();
  app->add_option("-c,--ctx-size", args->engine.n_ctx, "Context per sequence (0: the model's, at most 4096)")->capture_default_str();
  app->add_option("-t,--threads", args->engine.n_threads, "Threads (0: all cores)")->capture_default_str();
  app->add_option("-b,--batch", args->engine.step_tokens,
                  "Tokens one step computes at most, prompt chunks included (0: 128, or --parallel if more)")
      ->capture_default_str();
  app->add_option("--queue", args->engine.max_queue, "Requests waiting beyond --parallel before 429")->capture_default_str();
  app->add_option("--chat-template", args->chat_template_file, "Jinja chat template file to use instead of the model's");
  app->add_option("--chat-format", args->chat_format, "Built-in chat format for models without a template")->capture_default_str();
  app->add_option("--max-body", args->max_body, "Largest request body in bytes (413 beyond)")->capture_default_str();
  app->add_flag("--log-content", args->log_content, "Put prompts and outputs in the request log");
  app->add_option("--drain-timeout", args->drain_timeout_s, "Seconds running requests may finish after SIGTERM")->capture_default_str();
  return {app, [args] { return run_serve(*args); }};
}

}  // namespace owl::cli
