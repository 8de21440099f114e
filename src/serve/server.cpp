#include "serve/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "serve/connection_pool.h"
#include "serve/embeddings.h"
#include "serve/ollama.h"
#include "serve/server_impl.h"

namespace owl::serve {
namespace {

constexpr int kListenBacklog = 1024;  // pending connections (the kernel caps it at somaxconn)


struct Route {
  const char* path;
  const char* method;
};
constexpr Route kRoutes[] = {{"/v1/chat/completions", "POST"}, {"/v1/completions", "POST"}, {"/v1/embeddings", "POST"},
                             {"/v1/models", "GET"},
                             {"/v1/models/{id}", "GET"},       {"/health", "GET"},          {"/metrics", "GET"},
                             {"/tokenize", "POST"},            {"/detokenize", "POST"},     {"/", "GET"},
                             {"/lora-adapters", "GET, POST"},  {"/lora-adapters/{name}", "DELETE"},
                             // Ollama's API (ollama_handlers.cpp)
                             {"/api/generate", "POST"},        {"/api/chat", "POST"},       {"/api/embed", "POST"},
                             {"/api/embeddings", "POST"},      {"/api/tags", "GET"},        {"/api/show", "POST"},
                             {"/api/ps", "GET"},               {"/api/version", "GET"}};

// The endpoint label of a path for the request counter: known routes only, so that scanning
// clients cannot grow the metric's label set.
std::string endpoint_label(const std::string& path) {
  if (path.rfind("/v1/models/", 0) == 0 && path.size() > 11) return "/v1/models/{id}";
  if (path.rfind("/lora-adapters/", 0) == 0 && path.size() > 15) return "/lora-adapters/{name}";
  for (const Route& r : kRoutes) {
    if (path == r.path) return r.path;
  }
  return "other";
}

// The method a known path answers, or nullptr.
const char* route_method(const std::string& path) {
  const std::string label = endpoint_label(path);
  for (const Route& r : kRoutes) {
    if (label == r.path) return r.method;
  }
  return nullptr;
}

// None for a limit that never lifts (a total budget spent).
void set_retry_after(httplib::Response& res, const ApiError& error) {
  if ((error.status == 429 || error.status == 503) && std::isfinite(error.retry_after_s)) {
    res.set_header("Retry-After", std::to_string(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(error.retry_after_s)))));
  }
}

void reply_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}


// The tokenizer of the model a /tokenize or /detokenize body names ("model", or the first model),
// or nullptr after replying.
const tokenizer::Tokenizer* body_tokenizer(const Server::Impl& s, const ModelRegistry& models, const Json& body,
                                           httplib::Response& res) {
  std::string id;
  if (auto it = body.find("model"); it != body.end() && it->is_string()) id = it->get<std::string>();
  const router::Provider* p = s.find_model(models, id).provider;
  if (p == nullptr) return reply_error(res, model_not_found(models, id)), nullptr;
  if (p->info().tokenizer == nullptr) {
    reply_error(res, ApiError{.message = fmt::format("the model '{}' is not served by this process and has no tokenizer here",
                                                     p->info().id), .param = "model"});
  }
  return p->info().tokenizer;
}

std::optional<Json> parse_object(const httplib::Request& req, httplib::Response& res) {
  auto body = parse_body(req.body);
  if (auto* e = std::get_if<ApiError>(&body)) return reply_error(res, *e), std::nullopt;
  return std::move(std::get<Json>(body));
}

void handle_tokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  const ModelRegistry* models = ready_models(s, res);
  if (!models) return;
  auto body = parse_object(req, res);
  if (!body) return;
  const tokenizer::Tokenizer* tok = body_tokenizer(s, *models, *body, res);
  if (!tok) return;
  auto content = body->find("content");
  if (content == body->end() || !content->is_string()) return reply_error(res, ApiError{.message = "'content' must be a string", .param = "content"});
  auto flag = [&](const char* key, bool fallback) -> std::optional<bool> {
    auto it = body->find(key);
    if (it == body->end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return std::nullopt;
    return it->get<bool>();
  };
  const auto add_special = flag("add_special", true), parse_special = flag("parse_special", false),
             with_pieces = flag("with_pieces", false);
  if (!add_special || !parse_special || !with_pieces) {
    return reply_error(res, ApiError{.message = "'add_special', 'parse_special' and 'with_pieces' must be booleans"});
  }
  const std::vector<int32_t> ids = tok->tokenize(content->get<std::string>(), {.add_special = *add_special,
                                                                               .parse_special = *parse_special});
  Json tokens = Json::array();
  for (int32_t id : ids) {
    if (*with_pieces) {
      tokens.push_back({{"id", id}, {"piece", tok->token_to_piece(id, true)}});
    } else {
      tokens.push_back(id);
    }
  }
  reply_json(res, 200, {{"tokens", std::move(tokens)}});
}

void handle_detokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  const ModelRegistry* models = ready_models(s, res);
  if (!models) return;
  auto body = parse_object(req, res);
  if (!body) return;
  const tokenizer::Tokenizer* tok = body_tokenizer(s, *models, *body, res);
  if (!tok) return;
  auto tokens = body->find("tokens");
  if (tokens == body->end() || !tokens->is_array()) return reply_error(res, ApiError{.message = "'tokens' must be an array of token ids", .param = "tokens"});
  std::vector<int32_t> ids;
  for (const Json& t : *tokens) {
    if (!t.is_number_integer() || !tok->valid(static_cast<int32_t>(t.get<int64_t>())) ||
        t.get<int64_t>() != static_cast<int32_t>(t.get<int64_t>())) {
      return reply_error(res, ApiError{.message = fmt::format("'tokens' holds {}, not a token id in [0, {})", t.dump(),
                                                              tok->n_vocab()), .param = "tokens"});
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  reply_json(res, 200, {{"content", tok->detokenize(ids)}});
}

void handle_embeddings(Server::Impl& s, const Principal& who, const httplib::Request& req, httplib::Response& res) {
  const auto start = engine::Clock::now();
  auto fail = [&](const ApiError& e) {
    reply_error(res, e);
    log_rejected(s, who, "/v1/embeddings", e);
  };
  const ModelRegistry* models = ready_models(s, res);
  if (!models) return;
  auto body = parse_body(req.body);
  if (auto* e = std::get_if<ApiError>(&body)) return fail(*e);
  const Json& json = std::get<Json>(body);
  std::string id;
  if (auto it = json.find("model"); it != json.end() && it->is_string()) id = it->get<std::string>();
  const Target target = s.find_model(*models, id);
  if (!target) return fail(model_not_found(*models, id));
  router::Provider* provider = target.provider;
  if (!target.adapter.empty()) {
    return fail(ApiError{.message = fmt::format("'{}' is a LoRA adapter of '{}'; embeddings are the base model's only (ask "
                                                "'{}')", id, provider->info().id, provider->info().id), .param = "model"});
  }
  auto parsed = parse_embedding_request(json, provider->info().n_vocab);
  if (auto* e = std::get_if<ApiError>(&parsed)) return fail(*e);
  const EmbeddingRequest& request = std::get<EmbeddingRequest>(parsed);
  auto result = run_embeddings(s, who, *provider, request, "/v1/embeddings", start);
  if (auto* e = std::get_if<ApiError>(&result)) return fail(*e);
  reply_json(res, 200, make_embedding_response(request, std::get<Embeddings>(result), provider->info().id));
}

Json model_card(const router::ModelInfo& m) {
  return {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", m.owned_by}};
}

// An adapter's card names its base model (`parent`) and file (`root`), as vLLM's do.
Json adapter_card(const router::ModelInfo& base, const router::NamedAdapter& a) {
  return {{"id", fmt::format("{}:{}", base.id, a.name)}, {"object", "model"}, {"created", a.created},
          {"owned_by", base.owned_by}, {"parent", base.id}, {"root", a.path}};
}

void add_routes(Server::Impl& s) {
  httplib::Server& h = s.http;
  if (!s.options.cors_origin.empty()) {  // browsers' preflight requests
    h.Options(R"(.*)", [](const httplib::Request&, httplib::Response& res) {
      res.status = 204;
      res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.set_header("Access-Control-Max-Age", "86400");
    });
  }
  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(index_html()), "text/html; charset=utf-8");
  });
  h.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    const ModelRegistry* m = s.models.load(std::memory_order_acquire);
    if (m == nullptr) return reply_json(res, 503, {{"status", "loading"}});
    if (s.draining.load()) return reply_json(res, 503, {{"status", "shutting down"}});
    // The load, for gateways that balance across nodes and for autoscalers.
    const engine::Gauges g = m->gauges();
    reply_json(res, 200, {{"status", "ok"}, {"model", m->find("")->info().id}, {"queued", g.queued}, {"running", g.running},
                          {"slots", g.n_slots}});
  });
  auto metrics = [&s](const Principal&, const httplib::Request&, httplib::Response& res) {
    const ModelRegistry* m = s.models.load(std::memory_order_acquire);
    res.set_content(s.metrics.render(m != nullptr ? m->gauges() : engine::Gauges{}), "text/plain; version=0.0.4");
  };
  if (s.options.public_metrics) {
    h.Get("/metrics", [metrics](const httplib::Request& req, httplib::Response& res) { metrics(Principal{}, req, res); });
  } else {
    h.Get("/metrics", guarded(s, metrics));
  }
  h.Get("/v1/models", guarded(s, [&s](const Principal&, const httplib::Request&, httplib::Response& res) {
    const ModelRegistry* m = ready_models(s, res);
    if (!m) return;
    Json data = Json::array();
    for (const auto& p : m->all()) {
      data.push_back(model_card(p->info()));
      if (const router::AdapterCatalog* catalog = p->adapter_catalog()) {
        for (const router::NamedAdapter& a : catalog->list()) data.push_back(adapter_card(p->info(), a));
      }
    }
    reply_json(res, 200, {{"object", "list"}, {"data", std::move(data)}});
  }));
  h.Get(R"(/v1/models/(.+))", guarded(s, [&s](const Principal&, const httplib::Request& req, httplib::Response& res) {
    const ModelRegistry* m = ready_models(s, res);
    if (!m) return;
    const std::string id = req.matches[1];
    const Target t = s.find_model(*m, id);
    if (!t) return reply_error(res, model_not_found(*m, id));
    if (t.adapter.empty()) return reply_json(res, 200, model_card(t.provider->info()));
    if (auto a = t.provider->adapter_catalog()->find(t.adapter)) return reply_json(res, 200, adapter_card(t.provider->info(), *a));
    reply_error(res, model_not_found(*m, id));  // unloaded meanwhile
  }));
  h.Post("/v1/chat/completions", guarded(s, [&s](const Principal& who, const httplib::Request& req, httplib::Response& res) {
    handle_completion(s, who, req, res, Endpoint::kChat);
  }));
  h.Post("/v1/completions", guarded(s, [&s](const Principal& who, const httplib::Request& req, httplib::Response& res) {
    handle_completion(s, who, req, res, Endpoint::kCompletion);
  }));
  h.Post("/v1/embeddings", guarded(s, [&s](const Principal& who, const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(s, who, req, res);
  }));
  h.Post("/tokenize", guarded(s, [&s](const Principal&, const httplib::Request& req, httplib::Response& res) {
    handle_tokenize(s, req, res);
  }));
  h.Post("/detokenize", guarded(s, [&s](const Principal&, const httplib::Request& req, httplib::Response& res) {
    handle_detokenize(s, req, res);
  }));
  add_adapter_routes(s);
  add_ollama_routes(s);
}

// Why binding failed, from the errno the failed call left (none for an unresolvable host).
std::string bind_failure(int error) {
  if (error == EADDRINUSE) return "address already in use (another server listens there)";
  if (error == EADDRNOTAVAIL) return "not an address of this machine";
  if (error == EACCES) return "permission denied (ports below 1024 need privileges)";
  if (error != 0) return std::strerror(error);
  return "the host does not resolve to an address of this machine";
}

}  // namespace

std::string iso_time_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

void log_rejected(Server::Impl& s, const Principal& who, std::string_view endpoint, const ApiError& e) {
  Json line = {{"event", "request"}, {"endpoint", endpoint}, {"status", e.status}, {"error", e.message}};
  if (!who.name.empty()) line["principal"] = who.name;
  s.log(line);
}

const ModelRegistry* ready_models(Server::Impl& s, httplib::Response& res) {
  const ModelRegistry* m = s.models.load(std::memory_order_acquire);
  if (m == nullptr || s.draining.load()) {
    reply_error(res, ApiError{.status = 503,
                              .message = m == nullptr ? "the model is still loading" : "the server is shutting down",
                              .type = "server_error", .code = m == nullptr ? "model_loading" : "shutting_down"});
    return nullptr;
  }
  return m;
}

namespace {

// The compute time a model priced per second is reserved for: 10 ms per prompt token and 1 s per
// token it may generate. A model slower than that still settles its real cost, which may then
// pass the reservation.
double reserved_seconds(int64_t prompt_tokens, int64_t output_tokens) {
  return 0.01 * static_cast<double>(prompt_tokens) + 1.0 * static_cast<double>(output_tokens);
}

}  // namespace

std::variant<Work, ApiError> completion_work(const Principal& who, const router::ModelInfo& model, std::string_view served,
                                             int64_t& max_tokens, int n, size_t body_bytes) {
  if (who.max_tokens > 0) {
    if (max_tokens > who.max_tokens) {
      return ApiError{.status = 400, .message = fmt::format("max_tokens {} is over this API key's limit of {}", max_tokens, who.max_tokens),
                      .param = "max_tokens", .code = "max_tokens_over_limit"};
    }
    if (max_tokens < 0) max_tokens = who.max_tokens;
  }
  if (max_tokens < 0 && model.n_ctx == 0 && who.needs_bound) max_tokens = kUnboundedMaxTokens;
  const int64_t per_choice = max_tokens >= 0 ? max_tokens : model.n_ctx > 0 ? model.n_ctx : kUnboundedMaxTokens;
  Work work{.model = served, .max_tokens = max_tokens, .n = n, .prompt_tokens_bound = static_cast<int64_t>(body_bytes)};
  const int64_t out = per_choice * n;
  work.worst_tokens = work.prompt_tokens_bound + out;
  const double worst_seconds = reserved_seconds(work.prompt_tokens_bound, out);
  work.worst_usd = model.cost_usd(work.prompt_tokens_bound, out, worst_seconds);
  return work;
}

std::variant<Embeddings, ApiError> run_embeddings(Server::Impl& s, const Principal& who, router::Provider& provider,
                                                  const EmbeddingRequest& request, std::string_view endpoint,
                                                  engine::Clock::time_point start) {
  Work work{.model = provider.info().id, .max_tokens = 0, .n = static_cast<int>(request.size())};
  for (const std::string& text : request.texts) work.prompt_tokens_bound += static_cast<int64_t>(text.size()) + 2;  // + BOS/EOS
  for (const auto& tokens : request.token_inputs) work.prompt_tokens_bound += static_cast<int64_t>(tokens.size());
  work.worst_tokens = work.prompt_tokens_bound;
  work.worst_usd = provider.info().cost_usd(work.prompt_tokens_bound, 0, reserved_seconds(work.prompt_tokens_bound, 0));
  if (auto denied = s.guard->admit(who, work)) return *denied;
  auto result = provider.embed(request);
  if (auto* e = std::get_if<ApiError>(&result)) {
    s.guard->settle(who, work, {});
    return *e;
  }
  const Embeddings& embeddings = std::get<Embeddings>(result);
  const double seconds = std::chrono::duration<double>(engine::Clock::now() - start).count();
  s.guard->settle(who, work, {.prompt_tokens = embeddings.prompt_tokens, .cost_usd = provider.info().cost_usd(embeddings.prompt_tokens, 0, seconds)});
  Json line = {{"event", "request"},
               {"endpoint", endpoint},
               {"model", provider.info().id},
               {"status", 200},
               {"inputs", request.size()},
               {"prompt_tokens", embeddings.prompt_tokens},
               {"duration_ms", std::chrono::duration<double, std::milli>(engine::Clock::now() - start).count()}};
  if (!request.user.empty()) line["user"] = request.user;
  if (!who.name.empty()) line["principal"] = who.name;
  s.log(line);
  return result;
}

httplib::Server::Handler guarded(Server::Impl& s, GuardedHandler handler) {
  return [&s, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    const std::string authorization = req.get_header_value("Authorization");
    auto who = s.guard->authenticate(
        Caller{.method = req.method, .path = req.path, .authorization = authorization, .remote_addr = req.remote_addr});
    if (auto* e = std::get_if<ApiError>(&who)) {
      s.log({{"event", "request"}, {"endpoint", endpoint_label(req.path)}, {"status", e->status}, {"error", e->message}});
      return reply_error_for(req, res, *e);
    }
    handler(std::get<Principal>(who), req, res);
  };
}

ApiError model_not_found(const ModelRegistry& models, std::string_view id) {
  return ApiError{.status = 404, .message = fmt::format("the model '{}' does not exist; this server serves {}", id, models.ids()),
                  .param = "model", .code = "model_not_found"};
}

void reply_error(httplib::Response& res, const ApiError& error) {
  set_retry_after(res, error);
  reply_json(res, error.status, error_json(error));
}

void reply_ollama_error(httplib::Response& res, const ApiError& error) {
  set_retry_after(res, error);
  res.status = error.status;
  res.set_content(dump_json(ollama_error_json(error)), "application/json; charset=utf-8");
}

void reply_error_for(const httplib::Request& req, httplib::Response& res, const ApiError& error) {
  if (req.path.rfind("/api/", 0) == 0) return reply_ollama_error(res, error);
  reply_error(res, error);
}

void Server::Impl::log(const Json& line) {
  Json out = {{"ts", iso_time_now()}};
  out.update(line);
  const std::string text = dump_json(out);
  std::lock_guard<std::mutex> lock(log_mutex);
  if (options.log) {
    options.log(text);
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

Target Server::Impl::find_model(const ModelRegistry& models, std::string_view id) const {
  Target t = models.resolve(id);
  if (!t && options.accept_any_model) t.provider = models.find("");
  return t;
}

std::string Server::Impl::make_id(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}-{:x}{:012x}", prefix, next_id.fetch_add(1), rng() & 0xffffffffffffull);
}

Server::Server(ServerOptions options, Metrics& metrics) : impl_(std::make_unique<Impl>(std::move(options), metrics)) {
  Impl& s = *impl_;
  s.http.set_payload_max_length(s.options.max_body_bytes);
  s.http.set_keep_alive_timeout(std::max(1, s.options.idle_timeout_s));
  s.http.set_read_timeout(std::max(1, s.options.idle_timeout_s));
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, with which a second server on a
  // busy port binds too and the kernel splits the connections between the two.
  // TCP_NODELAY (inherited by accepted connections): without it a response written as headers
  // then body waits for the client's delayed ACK, about 40 ms per request on a kept-alive
  // connection.
  s.http.set_tcp_nodelay(true);
  s.http.set_socket_options([&s](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    s.listen_socket = sock;
  });
  const int max_connections = s.options.max_connections;
  s.http.new_task_queue = [max_connections] {
    return new ConnectionPool(max_connections, std::chrono::seconds(30));
  };
  s.http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // an error in the API's shape already
    ApiError e{.status = res.status, .message = fmt::format("{} {}: HTTP status {}", req.method, req.path, res.status)};
    if (res.status == 413) e.message = "the request body is larger than the server's limit (--max-body)";
    if (res.status == 404) e.code = "not_found";
    // A known path asked with another method: 405 and the method it answers.
    if (const char* method = route_method(req.path); res.status == 404 && method != nullptr && req.method != method &&
                                                     !(req.method == "HEAD" && std::string_view(method) == "GET")) {
      e = ApiError{.status = 405, .message = fmt::format("{} takes {}, not {}", req.path, method, req.method),
                   .code = "method_not_allowed"};
      res.set_header("Allow", method);
    }
    reply_error_for(req, res, e);
    res.status = e.status;
  });
  s.http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    reply_error_for(req, res, ApiError{.status = 500, .message = fmt::format("internal error: {}", what), .type = "server_error"});
  });
  // Counted when the status is final and before the response is written (a logger would run
  // after it), so a client that reads /metrics after a reply always finds that reply counted.
  s.http.set_post_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    s.metrics.count_request(endpoint_label(req.path), res.status);
    if (!s.options.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", s.options.cors_origin);
      if (s.options.cors_origin != "*") res.set_header("Vary", "Origin");
    }
  });
  add_routes(s);
}

Server::~Server() { stop(); }

core::Result<int> Server::bind() {
  Impl& s = *impl_;
  int port = s.options.port;
  errno = 0;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.options.host);
    if (port <= 0) return core::make_error("cannot listen on {}, any port: {}", s.options.host, bind_failure(errno));
  } else if (!s.http.bind_to_port(s.options.host, port)) {
    return core::make_error("cannot listen on {}:{}: {}", s.options.host, port, bind_failure(errno));
  }
  // httplib listens with a backlog of 5 connections: in a burst of new clients the kernel drops
  // the SYNs beyond it, and the clients resend them only a second later. Listening again on the
  // bound socket deepens the backlog.
  if (s.listen_socket >= 0 && ::listen(s.listen_socket, kListenBacklog) != 0) {
    return core::make_error("cannot listen on {}:{} with a backlog of {}: {}", s.options.host, port,
                            kListenBacklog, std::strerror(errno));
  }
  return port;
}

void Server::start() {
  Impl& s = *impl_;
  s.thread = std::thread([&s] {
    s.http.listen_after_bind();
    s.listen_returned.store(true);
  });
  // httplib's stop() does nothing until its accept loop runs: wait for it, so that a stop() that
  // follows at once (a failed start-up) is never lost.
  while (!s.http.is_running() && !s.listen_returned.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Server::set_models(std::shared_ptr<const ModelRegistry> models) {
  impl_->models_storage = std::move(models);
  impl_->models.store(impl_->models_storage.get(), std::memory_order_release);
}

void Server::drain() { impl_->draining.store(true); }

bool Server::wait_streams(std::chrono::milliseconds timeout) {
  using engine::Clock;
  const auto until = Clock::now() + timeout;
  while (impl_->active_streams.load() > 0) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void Server::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->http.stop();
  impl_->thread.join();
}

}  // namespace owl::serve
