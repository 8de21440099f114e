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
};

// What a completion asks for, at admission: its worst case but for the prompt, which is known
// only once its provider has rendered and tokenized it.
struct Work {
  std::string_view model;
  int64_t max_tokens = -1;    // < 0: until the context is full
  int n = 1;
};

// Threading: every method may be called from any thread, concurrently.
class Guard {
 public:
  virtual ~Guard() = default;
  // The principal, or the error to answer with (401).
  virtual std::variant<Principal, ApiError> authenticate(const Caller& caller) = 0;
  // Nothing when `work` may start now; otherwise the error (403, 429 with retry_after_s).
  virtual std::optional<ApiError> admit(const Principal& who, const Work& work) = 0;
  // An admitted request ended, having used these tokens.
  virtual void settle(const Principal& who, const Work& work, int64_t prompt_tokens, int64_t completion_tokens) = 0;
};

// No authentication and no limits: everyone is the anonymous principal.
class OpenGuard final : public Guard {
 public:
  std::variant<Principal, ApiError> authenticate(const Caller&) override { return Principal{}; }
  std::optional<ApiError> admit(const Principal&, const Work&) override { return std::nullopt; }
  void settle(const Principal&, const Work&, int64_t, int64_t) override {}
};

}  // namespace owl::serve
