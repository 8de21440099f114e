// The request guard: who is calling (authenticate) and whether they may start this work now
// (admit), asked for every endpoint but /health and the chat page before anything is routed;
// what an admitted request used is settled when it ends. API keys, rate limits and budgets are
// guards; counters that must hold across nodes live behind counters.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "router/request.h"

namespace owl::serve {

using router::ApiError;

// What the guard sees of an HTTP request.
struct Caller {
  std::string_view method;
  std::string_view path;
  std::string_view authorization;  // the Authorization header; "" when absent
  std::string_view remote_addr;
};

// Who is calling, once authenticated: a key's name, or "" for anyone (no authentication).
struct Principal {
  std::string name;
  std::string key_id;         // the key's public id; "" for anyone
  int64_t max_tokens = 0;     // the most a request may ask for (and its default); 0: no cap
  // The key's limits need every request's worst case bounded: a request to a model of unknown
  // context that sets no max_tokens is given kUnboundedMaxTokens.
  bool needs_bound = false;
};

// What a request asks for, at admission, with its worst case: the prompt is bounded by the size
// of what the client sent (a token is at least one byte of text, or one id given), which is all
// that is known before the provider renders and tokenizes it.
struct Work {
  std::string_view model;     // the id asked for (a model, "model:adapter" or a route)
  int64_t max_tokens = -1;    // per choice; < 0: until the context is full
  int n = 1;
  int64_t prompt_tokens_bound = 0;
  int64_t worst_tokens = 0;   // prompt_tokens_bound + n × the most each choice can generate
  double worst_usd = 0;       // what the request can cost at most, at the model's prices
  std::string ticket;         // the guard's: what admission reserved, for settle to release
};

// What an admitted request used, when it ended.
struct Used {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double cost_usd = 0;
};

// A request to a model of unknown context (a hosted one) without max_tokens, from a caller whose
// limits need a bound, is given this max_tokens.
inline constexpr int64_t kUnboundedMaxTokens = 4096;

// Threading: every method may be called from any thread, concurrently.
class Guard {
 public:
  virtual ~Guard() = default;
  // The principal, or the error to answer with (401).
  virtual std::variant<Principal, ApiError> authenticate(const Caller& caller) = 0;
  // Nothing when `work` may start now; otherwise the error (403, 429 with retry_after_s).
  // Admission may write work.ticket; the same Work is given back to settle.
  virtual std::optional<ApiError> admit(const Principal& who, Work& work) = 0;
  // An admitted request ended, having used this much; `work` is what was admitted.
  virtual void settle(const Principal& who, const Work& work, const Used& used) = 0;
};

// No authentication and no limits: everyone is the anonymous principal.
class OpenGuard final : public Guard {
 public:
  std::variant<Principal, ApiError> authenticate(const Caller&) override { return Principal{}; }
  std::optional<ApiError> admit(const Principal&, Work&) override { return std::nullopt; }
  void settle(const Principal&, const Work&, const Used&) override {}
};

}  // namespace owl::serve
