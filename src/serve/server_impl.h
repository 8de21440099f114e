// What server.cpp and completions.cpp share: the Server's state behind its pimpl.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "serve/api.h"
#include "serve/server.h"

namespace owl::serve {

struct Server::Impl {
  Impl(ServerOptions o, Metrics& m) : options(std::move(o)), metrics(m) {}

  ServerOptions options;
  Metrics& metrics;
  httplib::Server http;
  std::thread thread;
  ServedModel served_storage;
  std::atomic<const ServedModel*> served{nullptr};  // published once by set_model()
  std::atomic<bool> draining{false};
  std::atomic<int> active_streams{0};               // chunked responses still being written
  std::atomic<uint64_t> next_id{0};
  int listen_socket = -1;  // the bound socket, as its options hook saw it
  std::mutex log_mutex;

  void log(const Json& line);
  std::string make_id(std::string_view prefix);
};

void reply_error(httplib::Response& res, const ApiError& error);
// POST /v1/chat/completions and /v1/completions.
void handle_completion(Server::Impl& server, const httplib::Request& req, httplib::Response& res, Endpoint endpoint);

}  // namespace owl::serve
