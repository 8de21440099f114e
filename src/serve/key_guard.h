// API keys as the request guard (`owl serve --auth`): a request carries `Authorization: Bearer
// KEY`; the key's row in the state file (keys.h) says who it is and what it may do. Admission
// takes, in order, a slot of the key's parallel requests, one of its requests per minute, the
// request's worst-case tokens from its tokens per minute, and its worst-case cost from its budget;
// a refusal gives back what was taken. Settling gives back the slot and what the worst case
// reserved beyond what was used, and records the real cost. Budgets are checked and reserved by
// the key store atomically against the recorded spend plus what running requests reserved, so
// that concurrent requests (on any number of gateways sharing the store) cannot overspend.
//
// Answers, in OpenAI's shape: 401 invalid_api_key (no key, a malformed, unknown, wrong or revoked
// one alike) or expired_api_key; 403 model_not_allowed; 429 rate_limit_exceeded with Retry-After
// for requests, tokens and parallel requests; 429 insufficient_quota for a spent budget, with
// Retry-After until the next period (none for a total budget); 400 when one request alone could
// pass the key's tokens per minute; 503 state_unavailable when the state file cannot be read
// (fail closed).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "serve/counters.h"
#include "serve/guard.h"
#include "serve/keys.h"

namespace owl::serve {

// Threading: every method may be called from any thread, concurrently.
class KeyGuard final : public Guard {
 public:
  // `now_unix`: the wall clock for expiry and budget periods (tests set it).
  KeyGuard(std::shared_ptr<KeyStore> store, std::shared_ptr<Counters> counters, std::function<int64_t()> now_unix = nullptr);

  std::variant<Principal, ApiError> authenticate(const Caller& caller) override;
  std::optional<ApiError> admit(const Principal& who, Work& work) override;
  void settle(const Principal& who, const Work& work, const Used& used) override;

 private:
  std::optional<ApiError> reserve_budget(const Principal& who, const KeyLimits& limits, Work& work);

  std::shared_ptr<KeyStore> store_;
  std::shared_ptr<Counters> counters_;
  std::function<int64_t()> now_unix_;
  mutable std::mutex mutex_;
  std::map<std::string, KeyLimits> limits_;    // by key id, as last authenticated; guarded by mutex_
  std::string ticket_prefix_;  // random, so that tickets of many gateways never collide
  std::atomic<uint64_t> next_ticket_{0};
};

}  // namespace owl::serve
