// The HTTP front of `owl serve`: OpenAI-compatible endpoints, Ollama's API (ollama.h), /health,
// /metrics, /tokenize, /detokenize and the chat page, on cpp-httplib. Every endpoint but /health
// and the page asks the Guard first (guard.h); completion handlers validate a request, find its
// model's Provider in the registry (registry.h), submit it there and relay the provider's events
// as a JSON response, server-sent events or (Ollama's) JSON lines. A client that disconnects
// cancels its request: the write fails (streams write a comment line or a space after a second of
// silence, plain responses that take longer than a second send JSON whitespace) and the engine
// drops it at its next step.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "serve/guard.h"
#include "serve/metrics.h"
#include "router/ledger.h"
#include "serve/registry.h"

namespace owl::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (see Server::bind)
  size_t max_body_bytes = size_t{1} << 20;
  bool log_content = false;              // put prompts and outputs in the request log
  // With log_content: what the log writes of a prompt or an output (the router's detectors
  // redact sensitive data); null writes them as they are.
  std::function<std::string(std::string_view)> redact;
  // Where every answered completion is recorded with its cost (`--ledger`); null: nowhere.
  std::shared_ptr<router::Ledger> ledger;
  int64_t default_max_tokens = -1;       // max_tokens of requests that set none; -1: until the context is full
  std::string cors_origin;               // Access-Control-Allow-Origin; empty: no CORS headers
  bool accept_any_model = false;         // an unknown model name gets the first model instead of 404
  // POST /lora-adapters may load and unload adapters (`--lora-runtime`): any caller the guard
  // lets in can then make the server read a file.
  bool adapter_loading = false;
  int max_connections = 1024;            // served at once, a thread each; more wait (connection_pool.h)
  int idle_timeout_s = 5;                // a keep-alive connection without a request is closed after this
  std::function<void(const std::string&)> log;  // one JSON line per request; default: stderr
  std::shared_ptr<Guard> guard;          // null: OpenGuard (no authentication, no limits)
  bool public_metrics = false;           // /metrics answers without asking the guard
};

// Threading: bind(), start() and wait() from the owning thread; set_models(), drain() and stop()
// from any one thread; handlers run on the HTTP thread pool and read the registry only after
// set_models() published it.
class Server {
 public:
  Server(ServerOptions options, Metrics& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port (the chosen one when options.port is 0).
  core::Result<int> bind();
  // Serves on a background thread until stop(); returns once it accepts connections.
  // /health answers 503 until set_models().
  void start();
  // Publishes the models, once; their providers must outlive the Server.
  void set_models(std::shared_ptr<const ModelRegistry> models);
  // Graceful shutdown, step one: new API requests get 503 and /health reports it.
  void drain();
  // Waits up to `timeout` for streamed responses still being written; true when none is left.
  bool wait_streams(std::chrono::milliseconds timeout);
  // Stops accepting connections, waits for the handlers, and joins the thread. Safe at any
  // moment: before bind() or start(), and more than once.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Now in UTC with milliseconds, as the request log writes it ("2026-12-06T22:39:38.465Z").
std::string iso_time_now();

// The chat page (src/serve/web/index.html, built into the binary).
std::string_view index_html();

}  // namespace owl::serve
