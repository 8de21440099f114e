// POST /v1/chat/completions and /v1/completions: validate, find the model's provider, admit the
// caller's work, submit it, and relay the provider's events as one JSON response or as
// server-sent events.
#include <algorithm>
#include <cctype>
#include <chrono>

#include <fmt/format.h>

#include "serve/server_impl.h"

namespace owl::serve {
namespace {

using engine::Clock;
using std::chrono::milliseconds;

constexpr milliseconds kHeartbeat{1000};  // silence after which a write probes the client
// After a client vanished, how long its request waits for the engine to end its sequences (at
// its next step) so that the log and the guard get their real usage.
constexpr milliseconds kCancelWait{10000};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

bool send(httplib::DataSink& sink, const std::string& text) { return sink.write(text.data(), text.size()); }

std::string sse(const Json& j) { return "data: " + dump_json(j) + "\n\n"; }

// One request in flight: what the handler and its content provider share.
// Threading: used by one HTTP thread at a time (the handler, then its content provider).
struct Call {
  Call(Server::Impl& s, const Principal& p, const tokenizer::Tokenizer* t) : server(s), who(p), tok(t) {}
  Server::Impl& server;
  const Principal who;
  const tokenizer::Tokenizer* tok;  // of the model that answers; null for a hosted one
  std::shared_ptr<router::RouteDecision> decision;  // a routed request's; read once an event was popped
  const router::ModelInfo* model_info = nullptr;    // of the provider asked
  CompletionRequest req;
  constrain::ToolSyntax tool_syntax = constrain::ToolSyntax::kHermes;
  std::string tool_prefix;
  ResponseInfo info;
  std::string prompt_text;
  std::shared_ptr<engine::RequestStream> stream;
  std::vector<ChoiceResult> results;
  std::vector<size_t> token_bytes;  // per choice: bytes of its tokens so far (completions' text_offset)
  std::string error;  // an engine error, ending the request
  bool cut = false;   // a choice was cancelled by the server (drain timeout) before its end
  bool logged = false;

  void apply(const engine::Event& e) {
    ChoiceResult& r = results[static_cast<size_t>(e.index)];
    if (!e.prompt_logprobs.empty()) r.prompt_tokens = e.prompt_logprobs;
    switch (e.kind) {
      case engine::Event::Kind::kToken:
        r.text += e.text;
        if (req.logprobs && e.has_token) r.tokens.push_back(e.sampled);
        break;
      case engine::Event::Kind::kEnd:
        r.finish = e.finish;
        r.stats = e.stats;
        r.ended = true;
        if (e.finish == engine::FinishReason::kCancelled) cut = true;
        else if (!e.tool_calls.empty()) take_tool_calls(e, r);
        else if (tok != nullptr) read_tool_calls(req, tool_syntax, tool_prefix, r);  // not a hosted model's text
        break;
      case engine::Event::Kind::kError:
        error = e.text;
        r.ended = true;
        break;
    }
  }

  // The error that ends the request instead of its answer, if any.
  std::optional<ApiError> failure() const {
    if (decision != nullptr && decision->error) return *decision->error;
    if (!error.empty()) return ApiError{.status = 500, .message = error, .type = "server_error"};
    if (cut) return cut_error();
    return std::nullopt;
  }
  static ApiError cut_error() {
    return ApiError{.status = 503, .message = "the server stopped this answer before its end (it is shutting down)",
                    .type = "server_error", .code = "cancelled"};
  }
  Json response_body() const {
    if (auto e = failure()) return error_json(*e);
    return make_response(req, info, results, tok);
  }
  int status() const { return failure() ? failure()->status : 200; }

  // The offset of a completions logprob chunk's token, counted before it is added.
  size_t next_offset(int index, const sample::Sampled& sampled) {
    size_t& bytes = token_bytes[static_cast<size_t>(index)];
    const size_t offset = bytes;
    bytes += token_text_size(sampled, tok);
    return offset;
  }

  // The client is gone: cancels, then waits for the engine to end the sequences (at its next
  // step) so that the usage logged and settled is what was computed.
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
                   {.id = info.id, .endpoint = req.endpoint == Endpoint::kChat ? "/v1/chat/completions" : "/v1/completions",
                    .model = info.model, .req = req, .results = results, .arrival = stream->t_arrival, .status = status,
                    .cancelled = cancelled || cut, .error = error, .prompt_text = prompt_text, .decision = decision.get(), .model_info = model_info});
  }

  const Work& work() const { return admitted; }
  Work admitted;  // set before admission, with the worst case the guard reserved
};

// A routed request: waits until its route decided (its first event is there), takes the
// answering model's details, and says who answers in the headers.
void await_decision(Call& call, std::shared_ptr<router::RouteDecision> decision, httplib::Response& res) {
  while (!call.stream->wait(kHeartbeat)) {
  }
  call.decision = std::move(decision);
  const router::RouteDecision& d = *call.decision;
  res.set_header("x-owl-route-name", d.route);
  res.set_header("x-owl-route", d.kind);
  if (d.error) return;
  call.info.model = d.model;
  call.tok = d.tokenizer;
  call.tool_syntax = d.tool_syntax;
  call.tool_prefix = d.tool_prefix;
  call.prompt_text = d.prompt_text;
  res.set_header("x-owl-model", d.model);
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
        const tokenizer::Tokenizer* tok = call->tok;
        if (!*opened) {
          *opened = true;
          std::string head;
          for (int i = 0; call->req.endpoint == Endpoint::kChat && i < call->req.n; ++i) {
            head += sse(make_chunk(call->req, call->info, {.index = i, .role = true}, tok));
          }
          if (!head.empty() && !send(sink, head)) return call->stream->cancel(), false;
        }
        engine::Event e;
        if (!call->stream->pop(e, kHeartbeat)) {
          if (!send(sink, ": keep-alive\n\n")) return call->stream->cancel(), false;
          return true;
        }
        call->apply(e);
        std::string out;
        // With tools, a choice's output is read whole at its end (text, or calls) and sent then.
        const bool tools = call->req.tools_active();
        if (tools && e.kind == engine::Event::Kind::kEnd && e.finish != engine::FinishReason::kCancelled) {
          const ChoiceResult& r = call->results[static_cast<size_t>(e.index)];
          if (!r.tool_calls.empty()) {
            out = sse(make_chunk(call->req, call->info, {.index = e.index, .calls = &r}, tok));
          } else if (!r.text.empty()) {
            out = sse(make_chunk(call->req, call->info, {.index = e.index, .text = r.text}, tok));
          }
          out += sse(make_chunk(call->req, call->info, {.index = e.index, .finish = e.finish, .called = !r.tool_calls.empty()}, tok));
        } else if (tools && e.kind == engine::Event::Kind::kToken) {
          // held until the choice ends
        } else if (e.kind == engine::Event::Kind::kToken && (!e.text.empty() || (call->req.logprobs && e.has_token))) {
          const sample::Sampled* sampled = call->req.logprobs && e.has_token ? &e.sampled : nullptr;
          const size_t offset = sampled != nullptr ? call->next_offset(e.index, *sampled) : 0;
          out = sse(make_chunk(call->req, call->info,
                               {.index = e.index, .text = e.text, .sampled = sampled, .text_offset = offset}, tok));
        } else if (e.kind == engine::Event::Kind::kEnd && e.finish == engine::FinishReason::kCancelled) {
          out = sse(error_json(Call::cut_error()));  // a cut answer says so: never a finish_reason
        } else if (e.kind == engine::Event::Kind::kEnd) {
          out = sse(make_chunk(call->req, call->info, {.index = e.index, .finish = e.finish}, tok));
        } else if (e.kind == engine::Event::Kind::kError) {
          out = sse(error_json(ApiError{.status = 500, .message = e.text, .type = "server_error"}));
        }
        if (call->stream->finished()) {
          if (call->req.include_usage) out += sse(make_usage_chunk(call->req, call->info, total_usage(call->results)));
          out += "data: [DONE]\n\n";
        }
        if (!out.empty() && !send(sink, out)) return call->stream->cancel(), false;
        if (call->stream->finished()) {
          call->log(call->status(), false);
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

// A plain JSON response. If it takes longer than a heartbeat, the status (200) and then JSON
// whitespace are sent while waiting, so that a vanished client is noticed and its work dropped.
void reply_whole(std::shared_ptr<Call> call, httplib::Response& res) {
  const auto until = Clock::now() + kHeartbeat;
  engine::Event e;
  while (!call->stream->finished()) {
    const auto now = Clock::now();
    if (now >= until) break;
    if (call->stream->pop(e, std::chrono::duration_cast<milliseconds>(until - now) + milliseconds(1))) call->apply(e);
  }
  if (call->stream->finished()) {
    if (call->decision != nullptr) res.set_header("x-owl-cost-usd", fmt::format("{:.8f}", call->decision->cost_usd));
    if (auto failure = call->failure()) {
      reply_error(res, *failure);
    } else {
      res.status = 200;
      res.set_content(dump_json(call->response_body()), "application/json");
    }
    call->log(call->status(), false);
    return;
  }
  call->server.active_streams.fetch_add(1);
  res.set_chunked_content_provider(
      "application/json",
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
        // The status (200) is already sent: a failure is told by the body, an OpenAI error object.
        if (!send(sink, dump_json(call->response_body()))) return call->stream->cancel(), false;
        call->log(call->status(), false);
        sink.done();
        return true;
      },
      [call](bool success) {
        if (!success) call->cancel_and_collect();
        call->log(200, !success);
        call->server.active_streams.fetch_sub(1);
      });
}

}  // namespace

void settle_and_log(Server::Impl& s, const Principal& who, const Work& work, const CompletionOutcome& o) {
  const Usage u = total_usage(o.results);
  Clock::time_point first = Clock::time_point::max(), end = o.arrival;
  std::string finish;
  for (const ChoiceResult& r : o.results) {
    if (r.stats.n_generated > 0) first = std::min(first, r.stats.t_first_token);
    end = std::max(end, r.stats.t_end);
    if (r.ended && finish.empty()) finish = engine::finish_reason_name(r.finish);
  }
  if (end == o.arrival) end = Clock::now();
  Json line = {{"event", "request"},
               {"id", o.id},
               {"endpoint", o.endpoint},
               {"model", o.model},
               {"status", o.status},
               {"stream", o.req.stream},
               {"n", o.req.n},
               {"prompt_tokens", u.prompt_tokens},
               {"cached_tokens", u.cached_tokens},
               {"completion_tokens", u.completion_tokens},
               {"ttft_ms", first == Clock::time_point::max() ? Json(nullptr) : Json(ms_between(o.arrival, first))},
               {"duration_ms", ms_between(o.arrival, end)},
               {"finish_reason", o.cancelled ? "cancelled" : finish}};
  if (!o.req.user.empty()) line["user"] = o.req.user;
  if (!who.name.empty()) line["principal"] = who.name;
  if (!o.error.empty()) line["error"] = o.error;
  if (o.decision != nullptr) {
    s.metrics.count_route(o.decision->route, o.decision->kind, o.decision->model, o.decision->cost_usd, o.decision->detectors);
    line["route"] = o.decision->route;
    line["route_decision"] = o.decision->kind;
    line["route_steps"] = o.decision->steps;
    if (!o.decision->detectors.empty()) line["detectors"] = o.decision->detectors;
    if (o.decision->mean_logprob) line["mean_logprob"] = *o.decision->mean_logprob;
    if (o.decision->error) line["error"] = o.decision->error->message;
  }
  double cost = 0;
  if (o.decision != nullptr || o.model_info != nullptr) {
    const double seconds = std::chrono::duration<double>(end - o.arrival).count();
    cost = o.decision != nullptr ? o.decision->cost_usd : o.model_info->cost_usd(u.prompt_tokens, u.completion_tokens, seconds);
    line["cost_usd"] = cost;
    if (s.options.ledger != nullptr && o.status == 200) {
      const router::LedgerEntry entry{
          .unix_s = static_cast<int64_t>(std::time(nullptr)), .route = o.decision != nullptr ? o.decision->route : "",
          .model = std::string(o.model), .user = !o.req.user.empty() ? o.req.user : who.name,
          .decision = o.decision != nullptr ? o.decision->kind : "", .status = o.status, .prompt_tokens = u.prompt_tokens,
          .completion_tokens = u.completion_tokens, .cost_usd = cost};
      if (auto recorded = s.options.ledger->record(entry); !recorded) s.log({{"event", "ledger_error"}, {"error", recorded.message()}});
    }
  }
  s.guard->settle(who, work, {.prompt_tokens = u.prompt_tokens, .completion_tokens = u.completion_tokens, .cost_usd = cost});
  if (s.options.log_content) {
    auto content = [&](std::string_view text) { return s.options.redact ? s.options.redact(text) : std::string(text); };
    line["prompt"] = content(o.prompt_text);
    Json outputs = Json::array();
    for (const ChoiceResult& r : o.results) outputs.push_back(content(r.text));
    line["output"] = std::move(outputs);
  }
  s.log(line);
}

void handle_completion(Server::Impl& s, const Principal& who, const httplib::Request& http_req, httplib::Response& res,
                       Endpoint endpoint) {
  const std::string_view path = endpoint == Endpoint::kChat ? "/v1/chat/completions" : "/v1/completions";
  auto fail = [&](const ApiError& e) {
    reply_error(res, e);
    log_rejected(s, who, path, e);
  };
  const ModelRegistry* models = s.models.load(std::memory_order_acquire);
  if (models == nullptr || s.draining.load()) {
    return fail(ApiError{.status = 503, .message = models == nullptr ? "the model is still loading" : "the server is shutting down",
                         .type = "server_error", .code = models == nullptr ? "model_loading" : "shutting_down"});
  }
  auto body = parse_body(http_req.body);
  if (auto* e = std::get_if<ApiError>(&body)) return fail(*e);
  const Json& json = std::get<Json>(body);
  // The model is found before the rest of the body is validated: its vocabulary bounds token ids.
  std::string model_id;
  if (auto it = json.find("model"); it != json.end() && it->is_string()) model_id = *it;
  const Target target = s.find_model(*models, model_id);
  if (!target) return fail(model_not_found(*models, model_id));
  router::Provider* provider = target.provider;
  const router::ModelInfo& model = provider->info();
  auto parsed = parse_completion_request(json, endpoint, model.n_vocab);
  if (auto* e = std::get_if<ApiError>(&parsed)) return fail(*e);
  auto call = std::make_shared<Call>(s, who, model.tokenizer);
  call->model_info = &model;
  call->req = std::move(std::get<CompletionRequest>(parsed));
  call->req.adapter = target.adapter;
  call->req.marked_sensitive = http_req.get_header_value("x-owl-sensitive") == "true";
  for (const auto& [name, value] : http_req.headers) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower.starts_with("x-")) call->req.headers.emplace_back(std::move(lower), value);
  }
  if (call->req.max_tokens < 0) call->req.max_tokens = s.options.default_max_tokens;
  call->info = ResponseInfo{.id = s.make_id(endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl"),
                            .created = static_cast<int64_t>(std::time(nullptr)),
                            .model = target.adapter.empty() ? model.id : fmt::format("{}:{}", model.id, target.adapter)};
  auto work = completion_work(who, model, call->info.model, call->req.max_tokens, call->req.n, http_req.body.size());
  if (auto* e = std::get_if<ApiError>(&work)) return fail(*e);
  call->admitted = std::get<Work>(work);
  if (auto denied = s.guard->admit(who, call->admitted)) return fail(*denied);
  call->results.resize(static_cast<size_t>(call->req.n));
  call->token_bytes.assign(static_cast<size_t>(call->req.n), 0);
  call->stream = std::make_shared<engine::RequestStream>(call->req.n);
  auto submitted = provider->submit(call->req, call->stream);
  if (auto* e = std::get_if<ApiError>(&submitted)) {
    if (e->code.starts_with("sensitive_data")) s.metrics.count_route(model.id, "blocked", "", 0, {});
    s.guard->settle(who, call->work(), {});
    return fail(*e);
  }
  const auto& submission = std::get<router::Submission>(submitted);
  call->prompt_text = submission.prompt_text;
  call->tool_syntax = submission.tool_syntax;
  call->tool_prefix = submission.tool_prefix;
  if (submission.decision != nullptr) await_decision(*call, submission.decision, res);
  // A route that found no model answers with its error, streamed or not.
  if (call->req.stream && !(call->decision != nullptr && call->decision->error)) {
    reply_stream(call, res);
  } else {
    reply_whole(call, res);
  }
}

}  // namespace owl::serve
