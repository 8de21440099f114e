// A hosted OpenAI-compatible API (OpenAI, a vLLM or llama.cpp server, another owl) as a
// Provider: the request is sent upstream as a stream, and the upstream's chunks come back as
// the engine's events, so the API layer answers the same way whoever computed the answer.
//
// Failures before the first token (connection refused, 429, 5xx, a timeout) are retried with
// exponential back-off (the upstream's Retry-After when it gives one); after `retries` they
// are the error submit() returns, in OpenAI's shape, naming the upstream. A run of failed
// requests opens a circuit breaker: the upstream is not asked for a cooldown, and submit()
// fails at once, so that a route's fallback answers without waiting for timeouts.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "router/config.h"
#include "router/in_flight.h"
#include "router/provider.h"

namespace httplib {
class Client;
}

namespace owl::router {

struct HostedOptions {
  int breaker_failures = 3;                 // failed requests in a row that open the breaker
  std::chrono::milliseconds breaker_cooldown{30000};
  std::chrono::milliseconds backoff{250};   // the first retry's wait; doubled for each next one
};

// Threading: every method may be called from any thread. Each request runs on a thread of its
// own until its stream ends; the destructor cancels those still running and waits for them.
class HostedProvider : public Provider {
 public:
  // `api_key` is sent as a bearer token ("" sends none).
  HostedProvider(ModelSpec spec, std::string api_key, int64_t created, HostedOptions options = {});
  ~HostedProvider() override;
  HostedProvider(const HostedProvider&) = delete;
  HostedProvider& operator=(const HostedProvider&) = delete;

  const ModelInfo& info() const override { return info_; }
  // Blocks until the upstream answered with its status (and retries failed), then relays the
  // stream on the request's thread.
  std::variant<Submission, ApiError> submit(const CompletionRequest& request, std::shared_ptr<engine::EventSink> sink) override;
  void cancel_running() override;

  const ModelSpec& spec() const { return spec_; }
  // True while the breaker keeps requests away from the upstream.
  bool breaker_open() const;

 private:
  struct Flight;
  std::unique_ptr<httplib::Client> take_client();
  void give_back(std::unique_ptr<httplib::Client> client);
  void run(std::shared_ptr<Flight> flight);
  void record(bool success);

  ModelSpec spec_;
  std::string api_key_;
  HostedOptions options_;
  ModelInfo info_;
  std::string origin_;       // scheme://host:port
  std::string path_prefix_;  // the base URL's path, e.g. "/v1"

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;  // guarded by mutex_: keep-alive connections
  int failures_ = 0;                                    // guarded by mutex_: in a row
  std::chrono::steady_clock::time_point open_until_{};  // guarded by mutex_
  InFlight in_flight_;
};

// The body sent upstream for `request` (exposed for tests): OpenAI's fields, streamed with usage.
Json upstream_body(const CompletionRequest& request, const std::string& upstream_model);

}  // namespace owl::router
