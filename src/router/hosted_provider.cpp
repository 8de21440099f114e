#include "router/hosted_provider.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include <httplib.h>
#include <openssl/x509.h>

namespace owl::router {
namespace {

using engine::Clock;
using engine::Event;

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr size_t kMaxPendingChunk = 4 * 1024 * 1024;  // an SSE event longer than this is an upstream fault

// The message of an upstream's error body: OpenAI's error.message, or the start of the text.
std::string upstream_message(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = j.find("error"); e != j.end()) {
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) return (*e)["message"];
      if (e->is_string()) return *e;
    }
  }
  std::string text = body.substr(0, 200);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text.empty() ? "no message" : text;
}

engine::FinishReason finish_of(const std::string& reason) {
  return reason == "length" ? engine::FinishReason::kLength : engine::FinishReason::kStop;
}

double retry_after_of(const httplib::Response& r) {
  if (!r.has_header("Retry-After")) return 0;
  char* end = nullptr;
  const std::string v = r.get_header_value("Retry-After");
  const double s = std::strtod(v.c_str(), &end);
  return end != v.c_str() && std::isfinite(s) && s > 0 ? s : 0;
}

}  // namespace

// One request: its body, the handshake with submit(), and the stream's state.
struct HostedProvider::Flight {
  std::string path, body;
  bool chat = true;
  int n = 1;
  std::shared_ptr<engine::EventSink> sink;
  Clock::time_point t_start = Clock::now();
  // Handshake: submit() waits until `decided`.
  std::mutex mutex;
  std::condition_variable cv;
  bool decided = false;
  std::optional<ApiError> error;
  // The stream (the request's thread only).
  std::string pending;  // bytes of an SSE event not yet complete
  bool done = false;    // [DONE] came
  bool failed = false;  // an error event was pushed
  std::vector<int64_t> generated;
  std::vector<std::string> finish;
  std::vector<std::vector<Event::ToolCall>> calls;  // per choice, by the upstream's call index
  int64_t prompt_tokens = 0, completion_tokens = -1;
  Clock::time_point t_first{};

  void decide(std::optional<ApiError> e) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (decided) return;
      decided = true;
      error = std::move(e);
    }
    cv.notify_all();
  }
  void fail(std::string message) {
    if (failed) return;
    failed = true;
    Event e;
    e.kind = Event::Kind::kError;
    e.text = std::move(message);
    sink->push(std::move(e));
  }
  // One SSE event's data. False stops the stream (an error, or [DONE]).
  bool on_data(std::string_view data, const std::string& who) {
    if (data == "[DONE]") return !(done = true);
    Json j = Json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(fmt::format("{} sent a chunk that is not JSON: {}", who, data.substr(0, 120))), false;
    if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
      return fail(fmt::format("{} failed during the answer: {}", who, upstream_message(j.dump()))), false;
    }
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
      prompt_tokens = u->value("prompt_tokens", int64_t{0});
      completion_tokens = u->value("completion_tokens", int64_t{-1});
    }
    auto choices = j.find("choices");
    if (choices == j.end() || !choices->is_array()) return true;
    for (const Json& c : *choices) {
      if (!c.is_object()) return fail(fmt::format("{} sent a choice that is not an object", who)), false;
      const Json* index_field = c.contains("index") && c["index"].is_number_integer() ? &c["index"] : nullptr;
      const int64_t index = index_field ? index_field->get<int64_t>() : 0;
      if (index < 0 || index >= n) return fail(fmt::format("{} sent choice {} of a request for {}", who, index, n)), false;
      const Json* text = nullptr;
      if (chat) {
        if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
          if (auto t = d->find("content"); t != d->end() && t->is_string()) text = &*t;
          if (auto tc = d->find("tool_calls"); tc != d->end() && tc->is_array() && !add_tool_calls(static_cast<size_t>(index), *tc, who)) return false;
        }
      } else if (auto t = c.find("text"); t != c.end() && t->is_string()) {
        text = &*t;
      }
      std::vector<sample::Sampled> tokens;
      if (auto lp = c.find("logprobs"); lp != c.end() && lp->is_object()) tokens = read_logprobs(*lp);
      const bool has_text = text != nullptr && !text->get_ref<const std::string&>().empty();
      if (has_text || !tokens.empty()) {
        if (t_first == Clock::time_point{}) t_first = Clock::now();
        ++generated[static_cast<size_t>(index)];
        // One event per token the upstream reported (the chunk's text on the first), or one.
        for (size_t k = 0; k < std::max<size_t>(tokens.size(), 1); ++k) {
          Event e;
          e.index = static_cast<int>(index);
          if (k == 0 && has_text) e.text = *text;
          e.has_token = true;
          if (k < tokens.size()) e.sampled = std::move(tokens[k]);
          sink->push(std::move(e));
        }
      }
      if (auto f = c.find("finish_reason"); f != c.end() && f->is_string()) finish[static_cast<size_t>(index)] = *f;
    }
    return true;
  }
  // A chunk's tool-call deltas (OpenAI's: the id and name first, the arguments in pieces).
  bool add_tool_calls(size_t choice, const Json& deltas, const std::string& who) {
    for (const Json& d : deltas) {
      if (!d.is_object()) continue;
      const int64_t k = d.contains("index") && d["index"].is_number_integer() ? d["index"].get<int64_t>() : 0;
      if (k < 0 || k >= 128) return fail(fmt::format("{} sent tool call {}", who, k)), false;
      auto& list = calls[choice];
      if (list.size() <= static_cast<size_t>(k)) list.resize(static_cast<size_t>(k) + 1);
      Event::ToolCall& call = list[static_cast<size_t>(k)];
      if (auto id = d.find("id"); id != d.end() && id->is_string()) call.id = *id;
      if (auto f = d.find("function"); f != d.end() && f->is_object()) {
        if (auto name = f->find("name"); name != f->end() && name->is_string()) call.name += name->get<std::string>();
        if (auto args = f->find("arguments"); args != f->end() && args->is_string()) call.arguments += args->get<std::string>();
      }
      if (call.arguments.size() > kMaxPendingChunk) return fail(fmt::format("{} sent tool arguments of more than {} bytes", who, kMaxPendingChunk)), false;
    }
    return true;
  }
  // A chunk's log-probabilities, as tokens spelled by the upstream: chat's logprobs.content, or
  // completions' parallel arrays.
  std::vector<sample::Sampled> read_logprobs(const Json& lp) const {
    std::vector<sample::Sampled> out;
    auto number = [](const Json& v) { return v.is_number() ? v.get<float>() : 0.0f; };
    if (chat) {
      auto content = lp.find("content");
      if (content == lp.end() || !content->is_array()) return out;
      for (const Json& t : *content) {
        if (!t.is_object()) continue;
        sample::Sampled s{.token = -1, .logprob = t.contains("logprob") ? number(t["logprob"]) : 0.0f};
        if (t.contains("token") && t["token"].is_string()) s.piece = t["token"];
        if (auto top = t.find("top_logprobs"); top != t.end() && top->is_array()) {
          for (const Json& a : *top) {
            if (!a.is_object() || !a.contains("token") || !a["token"].is_string()) continue;
            s.top.push_back({.token = -1, .logprob = a.contains("logprob") ? number(a["logprob"]) : 0.0f, .piece = a["token"]});
          }
        }
        out.push_back(std::move(s));
      }
      return out;
    }
    auto tokens = lp.find("tokens");
    auto values = lp.find("token_logprobs");
    if (tokens == lp.end() || values == lp.end() || !tokens->is_array() || !values->is_array()) return out;
    auto tops = lp.find("top_logprobs");
    for (size_t i = 0; i < tokens->size() && i < values->size(); ++i) {
      sample::Sampled s{.token = -1, .logprob = number((*values)[i])};
      if ((*tokens)[i].is_string()) s.piece = (*tokens)[i];
      if (tops != lp.end() && tops->is_array() && i < tops->size() && (*tops)[i].is_object()) {
        for (const auto& [piece, value] : (*tops)[i].items()) s.top.push_back({.token = -1, .logprob = number(value), .piece = piece});
      }
      out.push_back(std::move(s));
    }
    return out;
  }
  // Bytes of the stream; false stops it.
  bool on_bytes(const char* data, size_t size, const std::string& who) {
    pending.append(data, size);
    for (;;) {
      size_t end = pending.find("\n\n");
      size_t skip = 2;
      if (const size_t crlf = pending.find("\r\n\r\n"); crlf != std::string::npos && crlf < end) end = crlf, skip = 4;
      if (end == std::string::npos) break;
      const std::string block = pending.substr(0, end);
      pending.erase(0, end + skip);
      std::string payload;
      for (size_t start = 0; start <= block.size();) {
        size_t eol = block.find('\n', start);
        if (eol == std::string::npos) eol = block.size();
        std::string_view line(block.data() + start, eol - start);
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (line.starts_with("data:")) {
          line.remove_prefix(5);
          if (line.starts_with(' ')) line.remove_prefix(1);
          if (!payload.empty()) payload += '\n';
          payload += line;
        }
        start = eol + 1;
      }
      if (!payload.empty() && !on_data(payload, who)) return false;
    }
    if (pending.size() > kMaxPendingChunk) return fail(fmt::format("{} sent an event of more than {} bytes", who, kMaxPendingChunk)), false;
    return !sink->cancelled();
  }
  // Ends every choice: with its finish reason and usage, or cancelled.
  void end_choices(bool cancelled) {
    int64_t others = 0;
    for (size_t i = 1; i < generated.size(); ++i) others += generated[i];
    for (int i = 0; i < n; ++i) {
      Event e;
      e.kind = Event::Kind::kEnd;
      e.index = i;
      e.finish = cancelled ? engine::FinishReason::kCancelled : finish_of(finish[static_cast<size_t>(i)]);
      if (!cancelled) {
        for (Event::ToolCall& c : calls[static_cast<size_t>(i)]) {
          if (!c.name.empty()) e.tool_calls.push_back(std::move(c));
        }
      }
      e.stats.n_prompt = prompt_tokens;
      e.stats.n_generated = generated[static_cast<size_t>(i)];
      // The upstream's count of completion tokens, when it gave one, rather than the chunks.
      if (i == 0 && completion_tokens >= 0) e.stats.n_generated = std::max<int64_t>(0, completion_tokens - others);
      e.stats.t_admitted = t_start;
      e.stats.t_first_token = t_first == Clock::time_point{} ? Clock::now() : t_first;
      e.stats.t_end = Clock::now();
      sink->push(std::move(e));
    }
  }
};

Json upstream_body(const CompletionRequest& request, const std::string& upstream_model) {
  Json body = Json::object();
  body["model"] = upstream_model;
  if (request.endpoint == Endpoint::kChat) {
    body["messages"] = request.messages;
  } else if (!request.prompt_tokens.empty()) {
    body["prompt"] = request.prompt_tokens;
  } else {
    body["prompt"] = request.prompt_text;
  }
  for (const auto& [key, value] : request.passthrough.items()) body[key] = value;
  if (request.max_tokens >= 0 && !body.contains("max_completion_tokens")) body["max_tokens"] = request.max_tokens;
  if (request.n != 1) body["n"] = request.n;
  if (request.tools.is_array() && !request.tools.empty()) {
    body["tools"] = request.tools;
    switch (request.tool_choice) {
      case ToolChoice::kAuto: body["tool_choice"] = "auto"; break;
      case ToolChoice::kNone: body["tool_choice"] = "none"; break;
      case ToolChoice::kRequired: body["tool_choice"] = "required"; break;
      case ToolChoice::kNamed: body["tool_choice"] = {{"type", "function"}, {"function", {{"name", request.tool_name}}}}; break;
    }
    if (!request.parallel_tool_calls) body["parallel_tool_calls"] = false;
  }
  if (request.logprobs) {
    if (request.endpoint == Endpoint::kChat) {
      body["logprobs"] = true;
      if (request.top_logprobs > 0) body["top_logprobs"] = request.top_logprobs;
    } else {
      body["logprobs"] = request.top_logprobs;
    }
  }
  if (!request.stop.empty()) body["stop"] = request.stop;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  return body;
}

HostedProvider::HostedProvider(ModelSpec spec, std::string api_key, int64_t created, HostedOptions options)
    : spec_(std::move(spec)), api_key_(std::move(api_key)), options_(options) {
  info_.id = spec_.name;
  info_.created = created;
  info_.owned_by = "hosted";
  info_.usd_per_input_token = spec_.price.input_per_mtok / 1e6;
  info_.usd_per_output_token = spec_.price.output_per_mtok / 1e6;
  // base_url is scheme://host[:port][/path] (checked by the config).
  const size_t host = spec_.base_url.find("://") + 3;
  const size_t slash = spec_.base_url.find('/', host);
  origin_ = spec_.base_url.substr(0, slash);
  path_prefix_ = slash == std::string::npos ? "" : spec_.base_url.substr(slash);
}

void HostedProvider::cancel_running() { in_flight_.cancel_all(); }

HostedProvider::~HostedProvider() { in_flight_.cancel_and_wait(); }

bool HostedProvider::breaker_open() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_ >= options_.breaker_failures && Clock::now() < open_until_;
}

std::unique_ptr<httplib::Client> HostedProvider::take_client() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      auto client = std::move(idle_.back());
      idle_.pop_back();
      return client;
    }
  }
  auto client = std::make_unique<httplib::Client>(origin_);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(spec_.timeout_s * 1000));
  client->set_connection_timeout(timeout);
  client->set_read_timeout(timeout);
  client->set_write_timeout(timeout);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  // https: the upstream's certificate and host name are checked, against ca_file or the system's
  // certificates.
  client->enable_server_certificate_verification(true);
  if (!spec_.ca_file.empty()) client->set_ca_cert_path(spec_.ca_file);
  return client;
}

void HostedProvider::give_back(std::unique_ptr<httplib::Client> client) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() < 16) idle_.push_back(std::move(client));
}

void HostedProvider::record(bool success) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (success) {
    failures_ = 0;
    return;
  }
  if (++failures_ >= options_.breaker_failures) open_until_ = Clock::now() + options_.breaker_cooldown;
}

std::variant<Submission, ApiError> HostedProvider::submit(const CompletionRequest& request, std::shared_ptr<engine::EventSink> sink) {
  auto refuse = [&](std::string_view what, std::string_view param) {
    return ApiError{.message = fmt::format("{} cannot be sent to the hosted model '{}'", what, spec_.name), .param = std::string(param)};
  };
  if (!request.lora.empty()) return refuse("llama.cpp's lora field", "lora");
  if (!request.grammar.empty() && !request.json_output) return refuse("a GBNF grammar", "grammar");
  if (request.json_output && !request.passthrough.contains("response_format")) return refuse("llama.cpp's json_schema field", "json_schema");
  if (breaker_open()) {
    return ApiError{.status = 503,
                    .message = fmt::format("the hosted model '{}' is not asked for {} s after {} failed requests in a row",
                                           spec_.name, options_.breaker_cooldown.count() / 1000, options_.breaker_failures),
                    .type = "server_error", .code = "upstream_unavailable", .retry_after_s = options_.breaker_cooldown.count() / 1000.0};
  }
  auto flight = std::make_shared<Flight>();
  flight->chat = request.endpoint == Endpoint::kChat;
  flight->path = path_prefix_ + (flight->chat ? "/chat/completions" : "/completions");
  flight->body = upstream_body(request, spec_.model.empty() ? spec_.name : spec_.model).dump();
  flight->n = request.n;
  flight->sink = sink;
  flight->generated.assign(static_cast<size_t>(request.n), 0);
  flight->finish.assign(static_cast<size_t>(request.n), "");
  flight->calls.assign(static_cast<size_t>(request.n), {});
  in_flight_.start(sink, [this, flight] { run(flight); });
  std::unique_lock<std::mutex> lock(flight->mutex);
  flight->cv.wait(lock, [&] { return flight->decided; });
  if (flight->error) return *flight->error;
  return Submission{};
}

void HostedProvider::run(std::shared_ptr<Flight> flight) {
  const std::string who = fmt::format("the hosted model '{}' ({})", spec_.name, spec_.base_url);
  for (int attempt = 0;; ++attempt) {
    auto client = take_client();
    httplib::Request req;
    req.method = "POST";
    req.path = flight->path;
    req.body = flight->body;
    req.set_header("Content-Type", "application/json");
    req.set_header("Accept", "text/event-stream");
    if (!api_key_.empty()) req.set_header("Authorization", "Bearer " + api_key_);
    int status = 0;
    double retry_after = 0;
    std::string error_body;
    req.response_handler = [&](const httplib::Response& r) {
      status = r.status;
      retry_after = retry_after_of(r);
      if (status == 200) flight->decide(std::nullopt);
      return true;
    };
    req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
      if (status != 200) {
        if (error_body.size() < kMaxErrorBody) error_body.append(data, std::min(size, kMaxErrorBody - error_body.size()));
        return true;
      }
      return flight->on_bytes(data, size, who);
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const bool sent = client->send(req, res, error);
    if (status == 200) {
      // The stream ran: it ends with [DONE], an error event, the client's cancel, or a cut.
      const bool cancelled = flight->sink->cancelled() && !flight->done;
      if (!flight->done && !flight->failed && !cancelled) {
        flight->fail(fmt::format("{} closed the stream before its end ({})", who, sent ? "no [DONE]" : httplib::to_string(error)));
      }
      if (!flight->failed) flight->end_choices(cancelled);
      record(!flight->failed);
      if (sent && flight->done) give_back(std::move(client));
      return;
    }
    if (error_body.empty()) error_body = res.body;
    const bool connection_failed = status == 0;
    // A certificate that fails verification fails again: it is not retried.
    const bool tls_refused = error == httplib::Error::SSLServerVerification;
    const bool retryable = (connection_failed && !tls_refused) || status == 429 || status >= 500;
    if (retryable && attempt < spec_.retries && !flight->sink->cancelled()) {
      auto wait = options_.backoff * (1 << attempt);
      if (retry_after > 0) wait = std::chrono::milliseconds(static_cast<int64_t>(retry_after * 1000));
      const auto cap = std::chrono::milliseconds(static_cast<int64_t>(spec_.timeout_s * 1000));
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(wait, cap));
      continue;
    }
    // A refusal of the request itself (400, 404, 413...) shows the upstream is up.
    const bool upstream_fault = retryable || status == 401 || status == 403;
    ApiError e{.status = 502, .type = "server_error"};
    if (tls_refused) {
      e.code = "upstream_tls";
      e.message = fmt::format("{}: its TLS certificate failed verification ({}); give the CA that signed it as ca_file", who,
                              X509_verify_cert_error_string(client->get_openssl_verify_result()));
    } else if (connection_failed) {
      const bool timeout = error == httplib::Error::ConnectionTimeout || error == httplib::Error::Read;
      e.status = timeout ? 504 : 502;
      e.code = timeout ? "upstream_timeout" : "upstream_unreachable";
      e.message = fmt::format("{} did not answer: {}", who, httplib::to_string(error));
    } else if (status == 429) {
      e = ApiError{.status = 429, .message = fmt::format("{} is rate-limited: {}", who, upstream_message(error_body)),
                   .type = "rate_limit_error", .code = "upstream_rate_limited", .retry_after_s = retry_after};
    } else if (status == 401 || status == 403) {
      e.code = "upstream_auth";
      e.message = fmt::format("{} refused this server's key ({}): {}", who, status, upstream_message(error_body));
    } else if (status >= 400 && status < 500) {
      e = ApiError{.status = status, .message = fmt::format("{} refused the request ({}): {}", who, status, upstream_message(error_body))};
    } else {
      e.code = "upstream_error";
      e.message = fmt::format("{} answered {}: {}", who, status, upstream_message(error_body));
    }
    record(!upstream_fault);
    flight->decide(std::move(e));
    return;
  }
}

}  // namespace owl::router
