// POST /v1/chat/completions and /v1/completions: validate, build the prompt, submit the choices
// to the engine, and relay its events as one JSON response or as server-sent events.
#include <chrono>
#include <random>

#include <fmt/format.h>

#include "serve/server_impl.h"
#include "template/chat.h"

namespace owl::serve {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kHeartbeat{1000};  // silence after which a write probes the client

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

bool send(httplib::DataSink& sink, const std::string& text) { return sink.write(text.data(), text.size()); }

std::string sse(const Json& j) { return "data: " + dump_json(j) + "\n\n"; }

// One request in flight: what the handler and its content provider share.
// Threading: used by one HTTP thread at a time (the handler, then its content provider).
struct Call {
  Call(Server::Impl& s, const ServedModel& m) : server(s), served(m) {}
  Server::Impl& server;
  const ServedModel& served;
  CompletionRequest req;
  ResponseInfo info;
  std::string prompt_text;
  std::shared_ptr<RequestStream> stream;
  std::vector<ChoiceResult> results;
  std::string error;  // an engine error, ending the request
  bool logged = false;

  void apply(const Event& e) {
    ChoiceResult& r = results[static_cast<size_t>(e.index)];
    switch (e.kind) {
      case Event::Kind::kToken:
        r.text += e.text;
        if (req.logprobs && e.has_token) r.tokens.push_back(e.sampled);
        break;
      case Event::Kind::kEnd:
        r.finish = e.finish;
        r.stats = e.stats;
        r.ended = true;
        break;
      case Event::Kind::kError:
        error = e.text;
        r.ended = true;
        break;
    }
  }

  Json response_body() const {
    if (!error.empty()) return error_json(ApiError{.status = 500, .message = error, .type = "server_error"});
    return make_response(req, info, results, *served.tokenizer);
  }

  void log(int status, bool cancelled) {
    if (logged) return;
    logged = true;
    const Usage u = total_usage(results);
    Clock::time_point first = Clock::time_point::max(), end = stream->t_arrival;
    std::string finish;
    for (const ChoiceResult& r : results) {
      if (r.stats.n_generated > 0) first = std::min(first, r.stats.t_first_token);
      end = std::max(end, r.stats.t_end);
      if (r.ended && finish.empty()) finish = finish_reason_name(r.finish);
    }
    if (end == stream->t_arrival) end = Clock::now();
    Json line = {{"event", "request"},
                 {"id", info.id},
                 {"endpoint", req.endpoint == Endpoint::kChat ? "/v1/chat/completions" : "/v1/completions"},
                 {"model", info.model},
                 {"status", status},
                 {"stream", req.stream},
                 {"n", req.n},
                 {"prompt_tokens", u.prompt_tokens},
                 {"cached_tokens", u.cached_tokens},
                 {"completion_tokens", u.completion_tokens},
                 {"ttft_ms", first == Clock::time_point::max() ? Json(nullptr) : Json(ms_between(stream->t_arrival, first))},
                 {"duration_ms", ms_between(stream->t_arrival, end)},
                 {"finish_reason", cancelled ? "cancelled" : finish}};
    if (!req.user.empty()) line["user"] = req.user;
    if (!error.empty()) line["error"] = error;
    if (server.options.log_content) {
      line["prompt"] = prompt_text;
      Json outputs = Json::array();
      for (const ChoiceResult& r : results) outputs.push_back(r.text);
      line["output"] = std::move(outputs);
    }
    server.log(line);
  }
};

void log_rejected(Server::Impl& s, std::string_view endpoint, const ApiError& e) {
  s.log({{"event", "request"}, {"endpoint", endpoint}, {"status", e.status}, {"error", e.message}});
}

// The prompt's tokens, through the chat template for chat requests.
std::variant<std::vector<int32_t>, ApiError> build_prompt(const ServedModel& m, Call& call) {
  const CompletionRequest& req = call.req;
  const tokenizer::Tokenizer& tok = *m.tokenizer;
  if (req.endpoint == Endpoint::kCompletion) {
    if (!req.prompt_tokens.empty()) return req.prompt_tokens;
    call.prompt_text = req.prompt_text;
    std::vector<int32_t> ids = tok.tokenize(req.prompt_text, {.add_special = true, .parse_special = true});
    if (ids.empty()) return ApiError{.message = "'prompt' is empty and the model adds no BOS token", .param = "prompt"};
    return ids;
  }
  tmpl::ChatOptions options;
  options.add_generation_prompt = true;
  options.bos_token = m.bos_token;
  options.eos_token = m.eos_token;
  auto text = tmpl::render_chat(*m.chat_template, req.messages, options);
  if (!text) return ApiError{.message = fmt::format("the chat template failed on these messages: {}", text.message()), .param = "messages"};
  call.prompt_text = *text;
  const bool has_bos = !m.bos_token.empty() && text->rfind(m.bos_token, 0) == 0;
  std::vector<int32_t> ids = tok.tokenize(*text, {.add_special = !has_bos, .parse_special = true});
  if (ids.empty()) return ApiError{.message = "the rendered prompt is empty", .param = "messages"};
  return ids;
}

std::vector<ChoiceParams> make_choices(const CompletionRequest& req, const std::vector<int32_t>& prompt) {
  std::vector<ChoiceParams> choices(static_cast<size_t>(req.n));
  std::random_device random;
  for (int i = 0; i < req.n; ++i) {
    ChoiceParams& c = choices[static_cast<size_t>(i)];
    c.prompt = prompt;
    c.sampling = req.sampling;
    c.sampling.seed = req.seeded ? req.sampling.seed + static_cast<uint64_t>(i)
                                 : (static_cast<uint64_t>(random()) << 32) ^ random();
    c.stop = req.stop;
    c.max_tokens = req.max_tokens;
    c.ignore_eos = req.ignore_eos;
  }
  return choices;
}

// Server-sent events: chunks as the engine produces them, a comment line after a second of
// silence (so that a vanished client is noticed), then the usage chunk and [DONE].
void reply_stream(std::shared_ptr<Call> call, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  call->server.active_streams.fetch_add(1);
  auto opened = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",
      [call, opened](size_t, httplib::DataSink& sink) {
        const tokenizer::Tokenizer& tok = *call->served.tokenizer;
        if (!*opened) {
          *opened = true;
          std::string head;
          for (int i = 0; call->req.endpoint == Endpoint::kChat && i < call->req.n; ++i) {
            head += sse(make_chunk(call->req, call->info, {.index = i, .role = true}, tok));
          }
          if (!head.empty() && !send(sink, head)) return call->stream->cancel(), false;
        }
        Event e;
        if (!call->stream->pop(e, kHeartbeat)) {
          if (!send(sink, ": keep-alive\n\n")) return call->stream->cancel(), false;
          return true;
        }
        call->apply(e);
        std::string out;
        if (e.kind == Event::Kind::kToken && (!e.text.empty() || (call->req.logprobs && e.has_token))) {
          const sample::Sampled* sampled = call->req.logprobs && e.has_token ? &e.sampled : nullptr;
          out = sse(make_chunk(call->req, call->info, {.index = e.index, .text = e.text, .sampled = sampled}, tok));
        } else if (e.kind == Event::Kind::kEnd) {
          out = sse(make_chunk(call->req, call->info, {.index = e.index, .finish = e.finish}, tok));
        } else if (e.kind == Event::Kind::kError) {
          out = sse(error_json(ApiError{.status = 500, .message = e.text, .type = "server_error"}));
        }
        if (call->stream->finished()) {
          if (call->req.include_usage) out += sse(make_usage_chunk(call->req, call->info, total_usage(call->results)));
          out += "data: [DONE]\n\n";
        }
        if (!out.empty() && !send(sink, out)) return call->stream->cancel(), false;
        if (call->stream->finished()) {
          call->log(call->error.empty() ? 200 : 500, false);
          sink.done();
        }
        return true;
      },
      [call](bool success) {
        if (!success) call->stream->cancel();
        call->log(200, !success);
        call->server.active_streams.fetch_sub(1);
      });
}

// A plain JSON response. If it takes longer than a heartbeat, the status (200) and then JSON
// whitespace are sent while waiting, so that a vanished client is noticed and its work dropped.
void reply_whole(std::shared_ptr<Call> call, httplib::Response& res) {
  const auto until = Clock::now() + kHeartbeat;
  Event e;
  while (!call->stream->finished()) {
    const auto now = Clock::now();
    if (now >= until) break;
    if (call->stream->pop(e, std::chrono::duration_cast<milliseconds>(until - now) + milliseconds(1))) call->apply(e);
  }
  if (call->stream->finished()) {
    const int status = call->error.empty() ? 200 : 500;
    res.status = status;
    res.set_content(dump_json(call->response_body()), "application/json");
    call->log(status, false);
    return;
  }
  call->server.active_streams.fetch_add(1);
  res.set_chunked_content_provider(
      "application/json",
      [call](size_t, httplib::DataSink& sink) {
        const auto until = Clock::now() + kHeartbeat;
        Event e;
        while (Clock::now() < until && !call->stream->finished()) {
          if (call->stream->pop(e, std::chrono::duration_cast<milliseconds>(until - Clock::now()) + milliseconds(1))) {
            call->apply(e);
          }
        }
        if (!call->stream->finished()) {
          if (!send(sink, " ")) return call->stream->cancel(), false;
          return true;
        }
        if (!send(sink, dump_json(call->response_body()))) return call->stream->cancel(), false;
        call->log(200, false);
        sink.done();
        return true;
      },
      [call](bool success) {
        if (!success) call->stream->cancel();
        call->log(200, !success);
        call->server.active_streams.fetch_sub(1);
      });
}

}  // namespace

void handle_completion(Server::Impl& s, const httplib::Request& http_req, httplib::Response& res, Endpoint endpoint) {
  const std::string_view path = endpoint == Endpoint::kChat ? "/v1/chat/completions" : "/v1/completions";
  auto fail = [&](const ApiError& e) {
    if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
    reply_error(res, e);
    log_rejected(s, path, e);
  };
  const ServedModel* m = s.served.load(std::memory_order_acquire);
  if (m == nullptr || s.draining.load()) {
    return fail(ApiError{.status = 503, .message = m == nullptr ? "the model is still loading" : "the server is shutting down",
                         .type = "server_error", .code = m == nullptr ? "model_loading" : "shutting_down"});
  }
  auto parsed = parse_completion_request(http_req.body, endpoint, m->model->config.n_vocab);
  if (auto* e = std::get_if<ApiError>(&parsed)) return fail(*e);
  auto call = std::make_shared<Call>(s, *m);
  call->req = std::move(std::get<CompletionRequest>(parsed));
  if (!call->req.model.empty() && call->req.model != m->name) {
    return fail(ApiError{.status = 404, .message = fmt::format("the model '{}' does not exist; this server serves '{}'", call->req.model, m->name),
                         .param = "model", .code = "model_not_found"});
  }
  auto prompt = build_prompt(*m, *call);
  if (auto* e = std::get_if<ApiError>(&prompt)) return fail(*e);
  const auto& ids = std::get<std::vector<int32_t>>(prompt);
  const int64_t n_ctx = m->engine->n_ctx();
  if (static_cast<int64_t>(ids.size()) >= n_ctx) {
    return fail(ApiError{.message = fmt::format("this model's context is {} tokens per sequence, but the prompt has {} tokens; "
                                                "shorten the {}", n_ctx, ids.size(), endpoint == Endpoint::kChat ? "messages" : "prompt"),
                         .param = endpoint == Endpoint::kChat ? "messages" : "prompt", .code = "context_length_exceeded"});
  }
  call->info = ResponseInfo{.id = s.make_id(endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl"),
                            .created = static_cast<int64_t>(std::time(nullptr)), .model = m->name};
  call->results.resize(static_cast<size_t>(call->req.n));
  call->stream = std::make_shared<RequestStream>(call->req.n);
  switch (m->engine->submit(make_choices(call->req, ids), call->stream)) {
    case SubmitResult::kAccepted: break;
    case SubmitResult::kQueueFull:
      return fail(ApiError{.status = 429, .message = "the server is busy: every sequence slot is taken and the queue is full; retry later",
                           .type = "server_error", .code = "server_busy"});
    case SubmitResult::kStopping:
      return fail(ApiError{.status = 503, .message = "the server is shutting down", .type = "server_error", .code = "shutting_down"});
  }
  if (call->req.stream) {
    reply_stream(call, res);
  } else {
    reply_whole(call, res);
  }
}

}  // namespace owl::serve
