// Ollama's endpoints: /api/generate and /api/chat submit to the model's provider as the OpenAI
// endpoints do (the same request, the same guard, the same request log) and relay its events as
// newline-delimited JSON or one JSON object; /api/embed and /api/embeddings go through the
// embeddings of /v1/embeddings; /api/tags, /api/show, /api/ps and /api/version describe the
// served models.
#include <chrono>

#include <fmt/format.h>

#include "serve/ollama.h"
#include "serve/server_impl.h"

namespace owl::serve {
namespace {

using engine::Clock;
using std::chrono::milliseconds;

constexpr milliseconds kHeartbeat{1000};  // silence after which a write probes the client
// After a client vanished, how long its request waits for the engine to end its sequence.
constexpr milliseconds kCancelWait{10000};

bool send(httplib::DataSink& sink, const std::string& text) { return sink.write(text.data(), text.size()); }

std::string ndjson(const Json& j) { return dump_json(j) + "\n"; }

void reply_ollama(httplib::Response& res, const Json& body) {
  res.status = 200;
  res.set_content(dump_json(body), "application/json; charset=utf-8");
}

// The published models, or the 503 to answer while loading or shutting down.
std::variant<const ModelRegistry*, ApiError> ready_models(const Server::Impl& s) {
  const ModelRegistry* m = s.models.load(std::memory_order_acquire);
  if (m != nullptr && !s.draining.load()) return m;
  return ApiError{.status = 503, .message = m == nullptr ? "the model is still loading" : "the server is shutting down",
                  .type = "server_error", .code = m == nullptr ? "model_loading" : "shutting_down"};
}

// The provider of the model a client names: its id, or its id with Ollama's default tag
// (":latest"), or BASE:NAME for an adapter NAME of BASE (whose tag is the adapter); with
// --accept-any-model, the first model for any other name.
struct Found {
  router::Provider* provider = nullptr;
  std::string name;  // the name answers carry: as asked, or the served model's when another was asked
  std::string adapter;  // the adapter the name picks; "" for none
};
std::variant<Found, ApiError> find_ollama_model(const Server::Impl& s, const ModelRegistry& models, const std::string& asked) {
  if (asked.empty()) return ApiError{.message = "model is required", .param = "model"};
  Target t = models.resolve(asked);
  constexpr std::string_view kLatest = ":latest";
  if (!t && asked.size() > kLatest.size() && asked.ends_with(kLatest)) {
    t = Target{.provider = models.find(std::string_view(asked).substr(0, asked.size() - kLatest.size()))};
  }
  if (t) return Found{.provider = t.provider, .name = asked, .adapter = t.adapter};
  if (s.options.accept_any_model) {
    router::Provider* p = models.find("");
    return Found{.provider = p, .name = ollama_name(p->info().id)};
  }
  std::string names;
  for (const auto& m : models.all()) {
    names += fmt::format("{}'{}'", names.empty() ? "" : ", ", ollama_name(m->info().id));
    if (const router::AdapterCatalog* catalog = m->adapter_catalog()) {
      for (const router::NamedAdapter& a : catalog->list()) names += fmt::format(", '{}:{}'", m->info().id, a.name);
    }
  }
  return ApiError{.status = 404, .message = fmt::format("model '{}' not found; this server serves {}", asked, names),
                  .param = "model", .code = "model_not_found"};
}

// A body's model, found; or the error (400 for a body that is not an object or names none).
std::variant<std::pair<Json, Found>, ApiError> body_and_model(Server::Impl& s, const httplib::Request& req) {
  auto ready = ready_models(s);
  if (auto* e = std::get_if<ApiError>(&ready)) return *e;
  auto body = parse_body(req.body);
  if (auto* e = std::get_if<ApiError>(&body)) return *e;
  auto found = find_ollama_model(s, *std::get<const ModelRegistry*>(ready), ollama_model_name(std::get<Json>(body)));
  if (auto* e = std::get_if<ApiError>(&found)) return *e;
  return std::pair{std::move(std::get<Json>(body)), std::get<Found>(found)};
}

std::optional<ApiError> check_num_ctx(int64_t num_ctx, const router::ModelInfo& model) {
  if (model.n_ctx <= 0 || num_ctx <= model.n_ctx) return std::nullopt;
  return ApiError{.message = fmt::format("'options.num_ctx' is {}, more than the {} positions this server gives each "
                                         "sequence of '{}' (owl serve --ctx-size)", num_ctx, model.n_ctx, model.id),
                  .param = "options.num_ctx"};
}

// One generate or chat request in flight: what the handler and its content provider share.
// Threading: used by one HTTP thread at a time (the handler, then its content provider).
struct OllamaCall {
  OllamaCall(Server::Impl& s, const Principal& p, const tokenizer::Tokenizer* t) : server(s), who(p), tok(t) {}
  Server::Impl& server;
  const Principal who;
  const tokenizer::Tokenizer* tok;  // of the model that answers (spells logprobs); null for a hosted one
  std::shared_ptr<router::RouteDecision> decision;  // a routed request's, once it decided
  OllamaRequest req;
  constrain::ToolSyntax tool_syntax = constrain::ToolSyntax::kHermes;
  std::string tool_prefix;
  std::string id, endpoint, name, served;  // served: the id of the model that runs it
  const router::ModelInfo* model_info = nullptr;  // prices the answer
  OllamaTimes times;
  std::string prompt_text;
  std::shared_ptr<engine::RequestStream> stream;
  std::vector<ChoiceResult> results = std::vector<ChoiceResult>(1);
  std::string error;  // an engine error, ending the request
  bool cut = false;   // cancelled by the server (drain timeout) before its end
  bool logged = false;

  void apply(const engine::Event& e) {
    ChoiceResult& r = results[0];
    if (e.kind == engine::Event::Kind::kToken) {
      r.text += e.text;
      if (req.completion.logprobs && e.has_token) r.tokens.push_back(e.sampled);
    } else if (e.kind == engine::Event::Kind::kEnd) {
      r.finish = e.finish;
      r.stats = e.stats;
      r.ended = true;
      cut = cut || e.finish == engine::FinishReason::kCancelled;
      if (!cut && !e.tool_calls.empty()) take_tool_calls(e, r);
      else if (!cut && tok != nullptr) read_tool_calls(req.completion, tool_syntax, tool_prefix, r);  // not a hosted model's text
    } else {
      error = e.text;
      r.ended = true;
    }
  }
  std::optional<ApiError> failure() const {
    if (decision != nullptr && decision->error) return *decision->error;
    if (!error.empty()) return ApiError{.status = 500, .message = error, .type = "server_error"};
    if (cut) {
      return ApiError{.status = 503, .message = "the server stopped this answer before its end (it is shutting down)",
                      .type = "server_error", .code = "cancelled"};
    }
    return std::nullopt;
  }
  Json whole_body() const {
    if (auto e = failure()) return ollama_error_json(*e);
    return make_ollama_done(req, name, results[0], true, times, tok);
  }
  // The lines an event of a stream adds.
  std::string lines(const engine::Event& e) const {
    // With tools, the answer is read whole at its end: its text or its calls in one line.
    const bool tools = req.completion.tools_active();
    if (tools && e.kind == engine::Event::Kind::kToken) return "";
    if (tools && e.kind == engine::Event::Kind::kEnd && !failure()) {
      const ChoiceResult& r = results[0];
      std::string out;
      if (!r.tool_calls.empty()) {
        out = ndjson(make_ollama_calls(req, name, r));
      } else if (!r.text.empty()) {
        out = ndjson(make_ollama_chunk(req, name, r.text, nullptr, tok));
      }
      return out + ndjson(make_ollama_done(req, name, r, false, times, tok));
    }
    if (e.kind == engine::Event::Kind::kToken && (!e.text.empty() || (req.completion.logprobs && e.has_token))) {
      const bool sampled = req.completion.logprobs && e.has_token;
      return ndjson(make_ollama_chunk(req, name, e.text, sampled ? &e.sampled : nullptr, tok));
    }
    if (e.kind == engine::Event::Kind::kToken) return "";
    if (auto f = failure()) return ndjson(ollama_error_json(*f));  // a cut answer says so: never done
    return ndjson(make_ollama_done(req, name, results[0], false, times, tok));
  }
  void cancel_and_collect() {
    stream->cancel();
    const auto until = Clock::now() + kCancelWait;
    engine::Event e;
    while (!stream->finished() && Clock::now() < until) {
      if (stream->pop(e, milliseconds(100))) apply(e);
    }
  }
  void log(int status, bool cancelled) {
    if (logged) return;
    logged = true;
    settle_and_log(server, who, work(),
                   {.id = id, .endpoint = endpoint, .model = served, .req = req.completion, .results = results,
                    .arrival = times.arrival, .status = status, .cancelled = cancelled || cut, .error = error,
                    .prompt_text = prompt_text, .decision = decision.get(), .model_info = model_info});
  }
  const Work& work() const { return admitted; }
  Work admitted;  // set before admission, with the worst case the guard reserved
};

// Newline-delimited JSON, Ollama's stream: a line per piece of text, then the line with done.
// After a second of silence a space is written, which the next line's JSON parser skips, so
// that a vanished client is noticed.
void reply_ndjson(std::shared_ptr<OllamaCall> call, httplib::Response& res) {
  call->server.active_streams.fetch_add(1);
  res.set_chunked_content_provider(
      "application/x-ndjson",
      [call](size_t, httplib::DataSink& sink) {
        engine::Event e;
        if (!call->stream->pop(e, kHeartbeat)) {
          if (!send(sink, " ")) return call->stream->cancel(), false;
          return true;
        }
        call->apply(e);
        if (const std::string out = call->lines(e); !out.empty() && !send(sink, out)) return call->stream->cancel(), false;
        if (call->stream->finished()) {
          call->log(call->failure() ? call->failure()->status : 200, false);
          sink.done();
        }
        return true;
      },
      [call](bool success) {
        if (!success) call->cancel_and_collect();
        call->log(200, !success);
        call->server.active_streams.fetch_sub(1);
      });
}

// One JSON object. If it takes longer than a heartbeat, the status (200) and then JSON
// whitespace are sent while waiting, so that a vanished client is noticed and its work dropped.
void reply_whole(std::shared_ptr<OllamaCall> call, httplib::Response& res) {
  const auto until = Clock::now() + kHeartbeat;
  engine::Event e;
  while (!call->stream->finished() && Clock::now() < until) {
    if (call->stream->pop(e, std::chrono::duration_cast<milliseconds>(until - Clock::now()) + milliseconds(1))) call->apply(e);
  }
  if (call->stream->finished()) {
    const auto failure = call->failure();
    if (failure) {
      reply_ollama_error(res, *failure);
    } else {
      reply_ollama(res, call->whole_body());
    }
    return call->log(failure ? failure->status : 200, false);
  }
  call->server.active_streams.fetch_add(1);
  res.set_chunked_content_provider(
      "application/json; charset=utf-8",
      [call](size_t, httplib::DataSink& sink) {
        const auto until = Clock::now() + kHeartbeat;
        engine::Event e;
        while (Clock::now() < until && !call->stream->finished()) {
          if (call->stream->pop(e, std::chrono::duration_cast<milliseconds>(until - Clock::now()) + milliseconds(1))) {
            call->apply(e);
          }
        }
        if (!call->stream->finished()) {
          if (!send(sink, " ")) return call->stream->cancel(), false;
          return true;
        }
        // The status (200) is already sent: a failure is told by the body, Ollama's error object.
        if (!send(sink, dump_json(call->whole_body()))) return call->stream->cancel(), false;
        call->log(call->failure() ? call->failure()->status : 200, false);
        sink.done();
        return true;
      },
      [call](bool success) {
        if (!success) call->cancel_and_collect();
        call->log(200, !success);
        call->server.active_streams.fetch_sub(1);
      });
}

// Parses, finds the model and admits a generate or chat request; null after a request with
// nothing to run was answered.
std::variant<std::shared_ptr<OllamaCall>, ApiError> prepare(Server::Impl& s, const Principal& who,
                                                            const httplib::Request& http, httplib::Response& res,
                                                            OllamaEndpoint endpoint, Clock::time_point arrival) {
  auto got = body_and_model(s, http);
  if (auto* e = std::get_if<ApiError>(&got)) return *e;
  const auto& [body, found] = std::get<std::pair<Json, Found>>(got);
  const router::ModelInfo& model = found.provider->info();
  auto parsed = parse_ollama_request(body, endpoint, model.n_vocab);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  OllamaRequest& req = std::get<OllamaRequest>(parsed);
  if (auto e = check_num_ctx(req.num_ctx, model)) return *e;
  if (req.load_only) {  // the model is loaded for as long as owl serves it
    reply_ollama(res, make_ollama_load(endpoint, found.name));
    s.log({{"event", "request"}, {"endpoint", http.path}, {"model", model.id}, {"status", 200}, {"finish_reason", "load"}});
    return std::shared_ptr<OllamaCall>();
  }
  if (model.tokenizer == nullptr && req.completion.logprobs) {
    return ApiError{.message = fmt::format("logprobs are given by models this server runs; '{}' is {}", model.id,
                                           model.owned_by == "hosted" ? "a hosted model" : "a route"),
                    .param = "logprobs"};
  }
  auto call = std::make_shared<OllamaCall>(s, who, model.tokenizer);
  call->req = std::move(req);
  call->req.completion.adapter = found.adapter;
  if (call->req.completion.max_tokens < 0) call->req.completion.max_tokens = s.options.default_max_tokens;
  call->id = s.make_id("ollama");
  call->endpoint = http.path;
  call->name = found.name;
  call->served = found.adapter.empty() ? model.id : fmt::format("{}:{}", model.id, found.adapter);
  call->model_info = &model;
  call->times.arrival = arrival;
  auto work = completion_work(who, model, call->served, call->req.completion.max_tokens, 1, http.body.size());
  if (auto* e = std::get_if<ApiError>(&work)) return *e;
  call->admitted = std::get<Work>(work);
  if (auto denied = s.guard->admit(who, call->admitted)) return *denied;
  call->stream = std::make_shared<engine::RequestStream>(1);
  auto submitted = found.provider->submit(call->req.completion, call->stream);
  if (auto* e = std::get_if<ApiError>(&submitted)) {
    s.guard->settle(who, call->work(), {});
    return *e;
  }
  call->times.submitted = Clock::now();
  const auto& submission = std::get<router::Submission>(submitted);
  call->prompt_text = submission.prompt_text;
  call->tool_syntax = submission.tool_syntax;
  call->tool_prefix = submission.tool_prefix;
  if (submission.decision != nullptr) {
    // A route: once it decided (its first event is there), the answering model is known.
    while (!call->stream->wait(kHeartbeat)) {
    }
    call->decision = submission.decision;
    const router::RouteDecision& d = *call->decision;
    res.set_header("x-owl-route-name", d.route);
    res.set_header("x-owl-route", d.kind);
    if (!d.error) {
      res.set_header("x-owl-model", d.model);
      call->name = ollama_name(d.model);
      call->served = d.model;
      call->tok = d.tokenizer;
      call->tool_syntax = d.tool_syntax;
      call->tool_prefix = d.tool_prefix;
      call->prompt_text = d.prompt_text;
    }
  }
  return call;
}

void handle_generate(Server::Impl& s, const Principal& who, const httplib::Request& http, httplib::Response& res,
                     OllamaEndpoint endpoint) {
  const auto arrival = Clock::now();
  auto prepared = prepare(s, who, http, res, endpoint, arrival);
  if (auto* e = std::get_if<ApiError>(&prepared)) {
    reply_ollama_error(res, *e);
    return log_rejected(s, who, http.path, *e);
  }
  auto call = std::get<std::shared_ptr<OllamaCall>>(prepared);
  if (!call) return;
  if (call->req.completion.stream) {
    reply_ndjson(call, res);
  } else {
    reply_whole(call, res);
  }
}

// The inputs longer than the context, as their first n_ctx tokens (Ollama's truncate).
void truncate_inputs(EmbeddingRequest& req, const router::ModelInfo& model) {
  if (model.tokenizer == nullptr || model.n_ctx <= 0) return;
  std::vector<std::string> texts;
  for (std::string& text : req.texts) {
    std::vector<int32_t> ids = model.tokenizer->tokenize(text, {.add_special = true});
    if (static_cast<int64_t>(ids.size()) <= model.n_ctx) {
      texts.push_back(std::move(text));
    } else {
      ids.resize(static_cast<size_t>(model.n_ctx));
      req.token_inputs.push_back(std::move(ids));
    }
  }
  req.texts = std::move(texts);
}

void handle_embed(Server::Impl& s, const Principal& who, const httplib::Request& http, httplib::Response& res, bool legacy) {
  OllamaTimes times{.arrival = Clock::now()};
  auto fail = [&](const ApiError& e) {
    reply_ollama_error(res, e);
    log_rejected(s, who, http.path, e);
  };
  auto got = body_and_model(s, http);
  if (auto* e = std::get_if<ApiError>(&got)) return fail(*e);
  const auto& [body, found] = std::get<std::pair<Json, Found>>(got);
  if (!found.adapter.empty()) {
    return fail(ApiError{.message = fmt::format("'{}' is a LoRA adapter of '{}'; embeddings are the base model's only",
                                                found.name, found.provider->info().id), .param = "model"});
  }
  auto parsed = parse_ollama_embed_request(body, legacy);
  if (auto* e = std::get_if<ApiError>(&parsed)) return fail(*e);
  OllamaEmbedRequest& req = std::get<OllamaEmbedRequest>(parsed);
  const router::ModelInfo& model = found.provider->info();
  if (auto e = check_num_ctx(req.num_ctx, model)) return fail(*e);
  if (req.embedding.size() == 0) {  // Ollama's way to load the model: nothing to embed
    reply_ollama(res, legacy ? Json{{"embedding", Json::array()}} : Json{{"model", found.name}, {"embeddings", Json::array()}});
    return;
  }
  if (req.truncate) truncate_inputs(req.embedding, model);
  times.submitted = Clock::now();
  auto result = run_embeddings(s, who, *found.provider, req.embedding, http.path, times.arrival);
  if (auto* e = std::get_if<ApiError>(&result)) return fail(*e);
  const router::Embeddings& embeddings = std::get<router::Embeddings>(result);
  if (legacy) return reply_ollama(res, {{"embedding", embeddings.vectors[0]}});
  reply_ollama(res, make_ollama_embed_response(found.name, embeddings, times, Clock::now()));
}

void handle_show(Server::Impl& s, const httplib::Request& http, httplib::Response& res) {
  auto got = body_and_model(s, http);
  if (auto* e = std::get_if<ApiError>(&got)) return reply_ollama_error(res, *e);
  const auto& [body, found] = std::get<std::pair<Json, Found>>(got);
  bool verbose = false;
  if (auto v = body.find("verbose"); v != body.end() && !v->is_null()) {
    if (!v->is_boolean()) return reply_ollama_error(res, ApiError{.message = "'verbose' must be a boolean", .param = "verbose"});
    verbose = v->get<bool>();
  }
  reply_ollama(res, ollama_show(found.provider->info(), verbose));
}

// GET /api/tags (`running`: /api/ps).
void handle_list(Server::Impl& s, httplib::Response& res, bool running) {
  auto ready = ready_models(s);
  if (auto* e = std::get_if<ApiError>(&ready)) return reply_ollama_error(res, *e);
  Json models = Json::array();
  for (const auto& p : std::get<const ModelRegistry*>(ready)->all()) {
    models.push_back(running ? ollama_ps_entry(p->info(), p->gauges().kv_bytes) : ollama_tags_entry(p->info()));
    // An adapter is the base model under another tag: BASE:NAME.
    if (const router::AdapterCatalog* catalog = running ? nullptr : p->adapter_catalog()) {
      for (const router::NamedAdapter& a : catalog->list()) {
        router::ModelInfo info = p->info();
        info.id = fmt::format("{}:{}", info.id, a.name);
        models.push_back(ollama_tags_entry(info));
      }
    }
  }
  reply_ollama(res, {{"models", std::move(models)}});
}

}  // namespace

void add_ollama_routes(Server::Impl& s) {
  httplib::Server& h = s.http;
  h.Post("/api/generate", guarded(s, [&s](const Principal& who, const httplib::Request& req, httplib::Response& res) {
    handle_generate(s, who, req, res, OllamaEndpoint::kGenerate);
  }));
  h.Post("/api/chat", guarded(s, [&s](const Principal& who, const httplib::Request& req, httplib::Response& res) {
    handle_generate(s, who, req, res, OllamaEndpoint::kChat);
  }));
  h.Post("/api/embed", guarded(s, [&s](const Principal& who, const httplib::Request& req, httplib::Response& res) {
    handle_embed(s, who, req, res, false);
  }));
  h.Post("/api/embeddings", guarded(s, [&s](const Principal& who, const httplib::Request& req, httplib::Response& res) {
    handle_embed(s, who, req, res, true);
  }));
  h.Post("/api/show", guarded(s, [&s](const Principal&, const httplib::Request& req, httplib::Response& res) {
    handle_show(s, req, res);
  }));
  h.Get("/api/tags", guarded(s, [&s](const Principal&, const httplib::Request&, httplib::Response& res) {
    handle_list(s, res, false);
  }));
  h.Get("/api/ps", guarded(s, [&s](const Principal&, const httplib::Request&, httplib::Response& res) {
    handle_list(s, res, true);
  }));
  h.Get("/api/version", guarded(s, [](const Principal&, const httplib::Request&, httplib::Response& res) {
    reply_ollama(res, {{"version", kOllamaApiVersion}});
  }));
}

}  // namespace owl::serve
