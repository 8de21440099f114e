#include "serve/key_guard.h"

#include "core/utc.h"

#include <cmath>
#include <ctime>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace owl::serve {
namespace {

ApiError invalid_key(std::string message) {
  return ApiError{.status = 401, .message = std::move(message), .code = "invalid_api_key"};
}

ApiError rate_limited(std::string message, std::string type, double retry_after_s) {
  return ApiError{.status = 429, .message = std::move(message), .type = std::move(type), .code = "rate_limit_exceeded",
                  .retry_after_s = retry_after_s};
}

ApiError state_unavailable(std::string_view what) {
  return ApiError{.status = 503, .message = fmt::format("{} cannot be read now; try again", what), .type = "server_error",
                  .code = "state_unavailable", .retry_after_s = 1};
}

BucketSpec per_minute(int64_t limit) {
  return BucketSpec{.capacity = static_cast<double>(limit), .refill_per_s = static_cast<double>(limit) / 60.0};
}

BucketSpec slots(int64_t limit) { return BucketSpec{.capacity = static_cast<double>(limit), .refill_per_s = 0}; }

std::string bucket(std::string_view kind, const std::string& id) { return fmt::format("{}:{}", kind, id); }

// "Bearer KEY" (the scheme in any case); "" for anything else.
std::string_view bearer(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  std::string_view key = authorization.substr(kScheme.size());
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
  return key;
}


}  // namespace

KeyGuard::KeyGuard(std::shared_ptr<KeyStore> store, std::shared_ptr<Counters> counters, std::function<int64_t()> now_unix)
    : store_(std::move(store)), counters_(std::move(counters)), now_unix_(std::move(now_unix)), ticket_prefix_(keys::random_hex(16)) {
  if (!now_unix_) now_unix_ = [] { return static_cast<int64_t>(std::time(nullptr)); };
}

std::variant<Principal, ApiError> KeyGuard::authenticate(const Caller& caller) {
  const std::string_view key = bearer(caller.authorization);
  if (key.empty()) return invalid_key("this server needs an API key: send the header 'Authorization: Bearer KEY'");
  auto checked = store_->check(key, now_unix_());
  if (!checked) {
    return state_unavailable("the API keys");
  }
  auto& [check, info] = *checked;
  if (check == KeyCheck::kInvalid) return invalid_key("invalid API key");
  if (check == KeyCheck::kExpired) {
    return ApiError{.status = 401, .message = fmt::format("the API key '{}' expired at {}", info.name, core::format_utc(info.limits.expires_unix, "%Y-%m-%d %H:%M UTC")),
                    .code = "expired_api_key"};
  }
  Principal who{.name = info.name, .key_id = info.id, .max_tokens = info.limits.max_tokens, .needs_bound = info.limits.need_bound()};
  std::lock_guard<std::mutex> lock(mutex_);
  limits_[info.id] = std::move(info.limits);
  return who;
}

std::optional<ApiError> KeyGuard::admit(const Principal& who, Work& work) {
  if (who.key_id.empty()) return std::nullopt;
  KeyLimits limits;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = limits_.find(who.key_id);
    if (it == limits_.end()) return invalid_key("invalid API key");
    limits = it->second;
  }
  if (!limits.allows(work.model)) {
    std::vector<std::string> may = limits.models;
    may.insert(may.end(), limits.routes.begin(), limits.routes.end());
    return ApiError{.status = 403, .message = fmt::format("the API key '{}' may not use '{}'; it may use {}", who.name, work.model, fmt::join(may, ", ")),
                    .param = "model", .code = "model_not_allowed"};
  }
  if (limits.tpm > 0 && work.worst_tokens > limits.tpm) {
    return ApiError{.status = 400,
                    .message = fmt::format("this request may use {} tokens (a prompt of up to {} and {} to generate), more than the {} "
                                           "tokens per minute of the API key '{}'; ask for fewer max_tokens",
                                           work.worst_tokens, work.prompt_tokens_bound, work.worst_tokens - work.prompt_tokens_bound,
                                           limits.tpm, who.name),
                    .param = "max_tokens", .code = "tokens_over_limit"};
  }
  // What was taken so far, given back when a later limit refuses.
  bool took_slot = false, took_request = false;
  auto undo = [&] {
    if (took_slot) counters_->give_back(bucket("parallel", who.key_id), slots(limits.max_parallel), 1);
    if (took_request) counters_->give_back(bucket("rpm", who.key_id), per_minute(limits.rpm), 1);
  };
  if (limits.max_parallel > 0) {
    const TakeResult t = counters_->take(bucket("parallel", who.key_id), slots(limits.max_parallel), 1);
    if (t.unavailable) return state_unavailable("the limits of this API key");
    if (!t.ok) {
      return rate_limited(fmt::format("the API key '{}' has {} request{} running, as many as it may", who.name, limits.max_parallel,
                                      limits.max_parallel == 1 ? "" : "s"), "requests", 1);
    }
    took_slot = true;
  }
  if (limits.rpm > 0) {
    const TakeResult t = counters_->take(bucket("rpm", who.key_id), per_minute(limits.rpm), 1);
    if (!t.ok) {
      undo();
      if (t.unavailable) return state_unavailable("the limits of this API key");
      return rate_limited(fmt::format("the API key '{}' is limited to {} requests per minute", who.name, limits.rpm), "requests", t.retry_after_s);
    }
    took_request = true;
  }
  if (limits.tpm > 0) {
    const TakeResult t = counters_->take(bucket("tpm", who.key_id), per_minute(limits.tpm), static_cast<double>(work.worst_tokens));
    if (!t.ok) {
      undo();
      if (t.unavailable) return state_unavailable("the limits of this API key");
      return rate_limited(fmt::format("the API key '{}' is limited to {} tokens per minute; this request may use {}", who.name,
                                      limits.tpm, work.worst_tokens),
                          "tokens", t.retry_after_s);
    }
  }
  if (auto refused = reserve_budget(who, limits, work)) {
    undo();
    if (limits.tpm > 0) counters_->give_back(bucket("tpm", who.key_id), per_minute(limits.tpm), static_cast<double>(work.worst_tokens));
    return refused;
  }
  return std::nullopt;
}

std::optional<ApiError> KeyGuard::reserve_budget(const Principal& who, const KeyLimits& limits, Work& work) {
  if (!limits.budget_usd) return std::nullopt;
  const int64_t now = now_unix_();
  work.ticket = fmt::format("{}-{}", ticket_prefix_, next_ticket_.fetch_add(1));
  auto c = store_->reserve(who.key_id, period_start(limits.period, now), *limits.budget_usd, work.worst_usd, work.ticket);
  if (!c) {
    work.ticket.clear();
    return state_unavailable("the budget of this API key");
  }
  if (!c->ok) {
    work.ticket.clear();
    const std::string period = limits.period == BudgetPeriod::kTotal ? "" : fmt::format(" {}", budget_period_name(limits.period));
    return ApiError{.status = 429,
                    .message = fmt::format("the API key '{}' has spent ${:.6f} of its ${:.6f}{} budget, ${:.6f} more is reserved by its "
                                           "running requests, and this request may cost up to ${:.6f}",
                                           who.name, c->spent, *limits.budget_usd, period, c->reserved, work.worst_usd),
                    .type = "insufficient_quota", .code = "insufficient_quota",
                    .retry_after_s = limits.period == BudgetPeriod::kTotal ? INFINITY : static_cast<double>(period_end(limits.period, now) - now)};
  }
  return std::nullopt;
}

void KeyGuard::settle(const Principal& who, const Work& work, const Used& used) {
  if (who.key_id.empty()) return;
  KeyLimits limits;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = limits_.find(who.key_id);
    if (it == limits_.end()) return;
    limits = it->second;
  }
  if (limits.max_parallel > 0) counters_->give_back(bucket("parallel", who.key_id), slots(limits.max_parallel), 1);
  if (limits.tpm > 0) {
    // Negative when the request used more than its bound: the bucket is charged the difference.
    const double unused = static_cast<double>(work.worst_tokens - used.prompt_tokens - used.completion_tokens);
    counters_->give_back(bucket("tpm", who.key_id), per_minute(limits.tpm), unused);
  }
  if (work.ticket.empty() && used.cost_usd <= 0) return;
  if (auto settled = store_->settle(who.key_id, period_start(limits.period, now_unix_()), work.ticket, used.cost_usd); !settled) {
    fmt::print(stderr, "owl serve: the spend of API key '{}' was not recorded: {}\n", who.name, settled.message());
  }
}

}  // namespace owl::serve
