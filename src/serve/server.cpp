#include "serve/server.h"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "serve/server_impl.h"

namespace owl::serve {
namespace {

constexpr int kListenBacklog = 1024;  // pending connections (the kernel caps it at somaxconn)

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

// The endpoint label of a path for the request counter: known routes only, so that scanning
// clients cannot grow the metric's label set.
std::string endpoint_label(const std::string& path) {
  for (const char* known : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics",
                            "/tokenize", "/detokenize", "/"}) {
    if (path == known) return known;
  }
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

void reply_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

const ServedModel* ready_model(Server::Impl& s, httplib::Response& res) {
  const ServedModel* m = s.served.load(std::memory_order_acquire);
  if (m == nullptr || s.draining.load()) {
    res.set_header("Retry-After", "1");
    reply_error(res, ApiError{.status = 503,
                              .message = m == nullptr ? "the model is still loading" : "the server is shutting down",
                              .type = "server_error", .code = m == nullptr ? "model_loading" : "shutting_down"});
    return nullptr;
  }
  return m;
}

std::optional<Json> parse_object(const httplib::Request& req, httplib::Response& res) {
  try {
    Json j = Json::parse(req.body);
    if (j.is_object()) return j;
    reply_error(res, ApiError{.message = fmt::format("the body must be a JSON object, got {}", j.type_name())});
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    reply_error(res, ApiError{.message = fmt::format("the body is not valid JSON: {}", e.what())});
  }
  return std::nullopt;
}

void handle_tokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  const ServedModel* m = ready_model(s, res);
  if (!m) return;
  auto body = parse_object(req, res);
  if (!body) return;
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
  const std::vector<int32_t> ids = m->tokenizer->tokenize(content->get<std::string>(), {.add_special = *add_special,
                                                                                          .parse_special = *parse_special});
  Json tokens = Json::array();
  for (int32_t id : ids) {
    if (*with_pieces) {
      tokens.push_back({{"id", id}, {"piece", m->tokenizer->token_to_piece(id, true)}});
    } else {
      tokens.push_back(id);
    }
  }
  reply_json(res, 200, {{"tokens", std::move(tokens)}});
}

void handle_detokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  const ServedModel* m = ready_model(s, res);
  if (!m) return;
  auto body = parse_object(req, res);
  if (!body) return;
  auto tokens = body->find("tokens");
  if (tokens == body->end() || !tokens->is_array()) return reply_error(res, ApiError{.message = "'tokens' must be an array of token ids", .param = "tokens"});
  std::vector<int32_t> ids;
  for (const Json& t : *tokens) {
    if (!t.is_number_integer() || !m->tokenizer->valid(static_cast<int32_t>(t.get<int64_t>())) ||
        t.get<int64_t>() != static_cast<int32_t>(t.get<int64_t>())) {
      return reply_error(res, ApiError{.message = fmt::format("'tokens' holds {}, not a token id in [0, {})", t.dump(),
                                                              m->tokenizer->n_vocab()), .param = "tokens"});
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  reply_json(res, 200, {{"content", m->tokenizer->detokenize(ids)}});
}

Json model_card(const ServedModel& m) {
  return {{"id", m.name}, {"object", "model"}, {"created", m.created}, {"owned_by", "owl"}};
}

void add_routes(Server::Impl& s) {
  httplib::Server& h = s.http;
  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(index_html()), "text/html; charset=utf-8");
  });
  h.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    const ServedModel* m = s.served.load(std::memory_order_acquire);
    if (m == nullptr) return reply_json(res, 503, {{"status", "loading"}});
    if (s.draining.load()) return reply_json(res, 503, {{"status", "shutting down"}});
    reply_json(res, 200, {{"status", "ok"}, {"model", m->name}});
  });
  h.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
    const ServedModel* m = s.served.load(std::memory_order_acquire);
    const EngineGauges g = m != nullptr ? m->engine->gauges() : EngineGauges{};
    res.set_content(s.metrics.render(g), "text/plain; version=0.0.4");
  });
  h.Get("/v1/models", [&s](const httplib::Request&, httplib::Response& res) {
    const ServedModel* m = ready_model(s, res);
    if (m) reply_json(res, 200, {{"object", "list"}, {"data", Json::array({model_card(*m)})}});
  });
  h.Get(R"(/v1/models/(.+))", [&s](const httplib::Request& req, httplib::Response& res) {
    const ServedModel* m = ready_model(s, res);
    if (!m) return;
    if (req.matches[1] != m->name) {
      return reply_error(res, ApiError{.status = 404, .message = fmt::format("the model '{}' does not exist", req.matches[1].str()),
                                       .param = "model", .code = "model_not_found"});
    }
    reply_json(res, 200, model_card(*m));
  });
  h.Post("/v1/chat/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_completion(s, req, res, Endpoint::kChat);
  });
  h.Post("/v1/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_completion(s, req, res, Endpoint::kCompletion);
  });
  h.Post("/tokenize", [&s](const httplib::Request& req, httplib::Response& res) { handle_tokenize(s, req, res); });
  h.Post("/detokenize", [&s](const httplib::Request& req, httplib::Response& res) { handle_detokenize(s, req, res); });
}

}  // namespace

void reply_error(httplib::Response& res, const ApiError& error) { reply_json(res, error.status, error_json(error)); }

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

std::string Server::Impl::make_id(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}-{:x}{:012x}", prefix, next_id.fetch_add(1), rng() & 0xffffffffffffull);
}

Server::Server(ServerOptions options, Metrics& metrics) : impl_(std::make_unique<Impl>(std::move(options), metrics)) {
  Impl& s = *impl_;
  s.http.set_payload_max_length(s.options.max_body_bytes);
  s.http.set_keep_alive_timeout(5);
  s.http.set_socket_options([&s](int sock) {
    httplib::default_socket_options(sock);
    s.listen_socket = sock;
  });
  int threads = s.options.http_threads;
  if (threads <= 0) threads = 64;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // an OpenAI-shaped error already
    ApiError e{.status = res.status, .message = fmt::format("{} {}: HTTP status {}", req.method, req.path, res.status)};
    if (res.status == 413) e.message = "the request body is larger than the server's limit (--max-body)";
    if (res.status == 404) e.code = "not_found";
    reply_error(res, e);
    res.status = e.status;
  });
  s.http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    reply_error(res, ApiError{.status = 500, .message = fmt::format("internal error: {}", what), .type = "server_error"});
  });
  // Counted when the status is final and before the response is written (a logger would run
  // after it), so a client that reads /metrics after a reply always finds that reply counted.
  s.http.set_post_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    s.metrics.count_request(endpoint_label(req.path), res.status);
  });
  add_routes(s);
}

Server::~Server() { stop(); }

core::Result<int> Server::bind() {
  Impl& s = *impl_;
  int port = s.options.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.options.host);
    if (port <= 0) return core::make_error("serve: cannot bind {} to any port", s.options.host);
  } else if (!s.http.bind_to_port(s.options.host, port)) {
    return core::make_error("serve: cannot bind {}:{} (in use, or not an address of this machine)", s.options.host,
                            port);
  }
  // httplib listens with a backlog of 5 connections: in a burst of new clients the kernel drops
  // the SYNs beyond it, and the clients resend them only a second later. Listening again on the
  // bound socket deepens the backlog.
  if (s.listen_socket >= 0 && ::listen(s.listen_socket, kListenBacklog) != 0) {
    return core::make_error("serve: cannot listen on {}:{} with a backlog of {}: {}", s.options.host, port,
                            kListenBacklog, std::strerror(errno));
  }
  return port;
}

void Server::start() {
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
}

void Server::set_model(const ServedModel& served) {
  impl_->served_storage = served;
  impl_->served.store(&impl_->served_storage, std::memory_order_release);
}

void Server::drain() { impl_->draining.store(true); }

bool Server::wait_streams(std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  while (impl_->active_streams.load() > 0) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void Server::stop() {
  if (!impl_) return;
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace owl::serve
