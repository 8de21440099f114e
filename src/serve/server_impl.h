// What server.cpp and completions.cpp share: the Server's state behind its pimpl.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "serve/api.h"
#include "serve/embeddings.h"
#include "serve/server.h"

namespace owl::serve {

struct Server::Impl {
  Impl(ServerOptions o, Metrics& m)
      : options(std::move(o)), metrics(m), guard(options.guard ? options.guard : std::make_shared<OpenGuard>()) {}

  ServerOptions options;
  Metrics& metrics;
  std::shared_ptr<Guard> guard;
  httplib::Server http;
  std::thread thread;
  std::shared_ptr<const ModelRegistry> models_storage;
  std::atomic<const ModelRegistry*> models{nullptr};  // published once by set_models()
  std::atomic<bool> draining{false};
  std::atomic<bool> listen_returned{false};  // the accept loop has ended
  std::atomic<int> active_streams{0};               // chunked responses still being written
  std::atomic<uint64_t> next_id{0};
  int listen_socket = -1;  // the bound socket, as its options hook saw it
  std::mutex log_mutex;

  void log(const Json& line);
  std::string make_id(std::string_view prefix);
  // The provider serving `id` (and the adapter it names); with accept_any_model, the first
  // model for an unknown id.
  Target find_model(const ModelRegistry& models, std::string_view id) const;
};

// How a completion request ended, for its request log line.
struct CompletionOutcome {
  std::string_view id;
  std::string_view endpoint;  // the path it was asked on
  std::string_view model;     // the id of the model that served it
  const CompletionRequest& req;
  const std::vector<ChoiceResult>& results;
  engine::Clock::time_point arrival;
  int status = 200;
  bool cancelled = false;     // by the client or by the server
  std::string_view error;     // an engine error; "" when none
  std::string_view prompt_text;
  const router::RouteDecision* decision = nullptr;  // a routed request's
  const router::ModelInfo* model_info = nullptr;    // prices a request that named a model
};
// The work of a completion asked of `model` (served as `served`) by `who`, in `n` choices, from a
// body of `body_bytes`: max_tokens is capped by the key's cap (an error when it asks for more; the
// cap when it sets none) and bounded for a caller whose limits need it; the worst case is priced
// (a model priced per second of compute is reserved 1 s per token it may generate and 10 ms per
// prompt token).
std::variant<Work, ApiError> completion_work(const Principal& who, const router::ModelInfo& model, std::string_view served,
                                             int64_t& max_tokens, int n, size_t body_bytes);

// Settles the tokens the request used with the guard and writes its request log line: every
// completion endpoint ends here, so that usage is counted the same way whatever the API.
void settle_and_log(Server::Impl& s, const Principal& who, const Work& work, const CompletionOutcome& outcome);

// The request log line of a request refused before it ran.
void log_rejected(Server::Impl& s, const Principal& who, std::string_view endpoint, const ApiError& e);

// The published models, or nullptr after replying 503 (still loading, or draining).
const ModelRegistry* ready_models(Server::Impl& s, httplib::Response& res);
// 404 for a model id no provider serves.
ApiError model_not_found(const ModelRegistry& models, std::string_view id);
// Sets Retry-After for 429 and 503.
void reply_error(httplib::Response& res, const ApiError& error);
// The same in Ollama's shape, {"error": message}.
void reply_ollama_error(httplib::Response& res, const ApiError& error);
// In the shape of the API the path belongs to (Ollama's under /api/).
void reply_error_for(const httplib::Request& req, httplib::Response& res, const ApiError& error);

// A handler behind the guard: it runs only for an authenticated caller.
using GuardedHandler = std::function<void(const Principal&, const httplib::Request&, httplib::Response&)>;
httplib::Server::Handler guarded(Server::Impl& s, GuardedHandler handler);

// Admits the embeddings of `request` for `who`, computes them, settles their tokens and writes
// the request log line; the error to answer with otherwise. Every embeddings endpoint goes
// through it.
std::variant<Embeddings, ApiError> run_embeddings(Server::Impl& s, const Principal& who, router::Provider& provider,
                                                  const EmbeddingRequest& request, std::string_view endpoint,
                                                  engine::Clock::time_point start);

// POST /v1/chat/completions and /v1/completions, for an authenticated caller.
void handle_completion(Server::Impl& server, const Principal& who, const httplib::Request& req,
                       httplib::Response& res, Endpoint endpoint);
// GET and POST /lora-adapters, DELETE /lora-adapters/{name} (adapters.cpp).
void add_adapter_routes(Server::Impl& server);
// Ollama's API: /api/generate, /api/chat, /api/embed, /api/embeddings, /api/tags, /api/show,
// /api/ps and /api/version (ollama_handlers.cpp).
void add_ollama_routes(Server::Impl& server);

}  // namespace owl::serve
