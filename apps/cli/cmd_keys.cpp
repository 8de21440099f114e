// owl keys: API keys for `owl serve --auth`, with their limits and budgets, in the state file.
// A new or rotated key is printed once, alone on stdout; everything else goes to stderr or is a
// listing that never shows a key.
#include <ctime>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/utc.h"
#include "serve/keys.h"
#include "state_file.h"

namespace owl::cli {
namespace {

struct KeysArgs {
  std::string state;
  std::string redis;
  std::string name;
  int64_t rpm = 0, tpm = 0, max_parallel = 0, max_tokens = 0;
  double budget_usd = -1;
  std::string period = "month";
  std::vector<std::string> models, routes;
  std::string expires;
  bool json = false;
};

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

constexpr int64_t kMaxLimit = 1'000'000'000;  // rpm, tpm, parallel, max_tokens

// "2027-01-31", "2027-01-31T12:00", "2027-01-31T12:00:00Z" (UTC), or a span from now: "30d", "12h", "90m".
core::Result<int64_t> parse_expiry(const std::string& text, int64_t now) {
  static const std::regex kSpan(R"((\d+)([dhm]))");
  static const std::regex kDate(R"((\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?Z?)?)");
  std::smatch m;
  if (std::regex_match(text, m, kSpan)) {
    const int64_t n = std::stoll(m[1]);
    const int64_t unit = m[2] == "d" ? 86400 : m[2] == "h" ? 3600 : 60;
    if (n <= 0 || n > 100 * 365) return core::make_error("--expires {}: give a span of 1 to 36500 units", text);
    return now + n * unit;
  }
  if (std::regex_match(text, m, kDate)) {
    std::tm tm{};
    tm.tm_year = std::stoi(m[1]) - 1900;
    tm.tm_mon = std::stoi(m[2]) - 1;
    tm.tm_mday = std::stoi(m[3]);
    tm.tm_hour = m[4].matched ? std::stoi(m[4]) : 0;
    tm.tm_min = m[5].matched ? std::stoi(m[5]) : 0;
    tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59) {
      return core::make_error("--expires {}: not a date", text);
    }
    const std::tm asked = tm;
    const int64_t at = static_cast<int64_t>(timegm(&tm));  // normalizes Feb 30 to Mar 2: compare
    if (tm.tm_mday != asked.tm_mday || tm.tm_mon != asked.tm_mon) return core::make_error("--expires {}: not a date", text);
    if (at <= now) return core::make_error("--expires {}: that is in the past", text);
    return at;
  }
  return core::make_error("--expires {}: give a UTC date (2027-01-31, 2027-01-31T12:00Z) or a span (30d, 12h, 90m)", text);
}

std::string utc(int64_t unix_s) { return unix_s == 0 ? "never" : core::format_utc(unix_s, "%Y-%m-%dT%H:%M:%SZ"); }

const char* status(const serve::KeyInfo& k) {
  if (k.revoked_unix != 0) return "revoked";
  return k.limits.expires_unix != 0 && now_unix() >= k.limits.expires_unix ? "expired" : "active";
}

std::string limit(int64_t n) { return n > 0 ? std::to_string(n) : "-"; }

nlohmann::json key_json(const serve::KeyInfo& k, double spent) {
  const serve::KeyLimits& l = k.limits;
  nlohmann::json j = {{"name", k.name}, {"id", k.id}, {"status", status(k)},
                      {"created", utc(k.created_unix)}, {"rpm", l.rpm}, {"tpm", l.tpm}, {"max_parallel", l.max_parallel},
                      {"max_tokens", l.max_tokens}, {"models", l.models}, {"routes", l.routes},
                      {"expires", l.expires_unix != 0 ? nlohmann::json(utc(l.expires_unix)) : nlohmann::json(nullptr)}};
  if (l.budget_usd) {
    j["budget_usd"] = *l.budget_usd;
    j["period"] = serve::budget_period_name(l.period);
    j["spent_usd"] = spent;
  }
  if (k.revoked_unix != 0) j["revoked"] = utc(k.revoked_unix);
  return j;
}

core::Result<std::shared_ptr<serve::KeyStore>> open_store(const KeysArgs& a) {
  auto c = open_key_store(a.state, a.redis);
  if (!c) return c.error();
  return c->store;
}

// Dollars the key spent in its current budget period (0 without a budget).
double spent_now(const serve::KeyStore& store, const serve::KeyInfo& k) {
  if (!k.limits.budget_usd) return 0;
  auto spent = store.spent(k.id, serve::period_start(k.limits.period, now_unix()));
  return spent ? *spent : 0;
}

int run_create(const KeysArgs& a) {
  serve::KeyLimits limits{.rpm = a.rpm, .tpm = a.tpm, .max_parallel = a.max_parallel, .max_tokens = a.max_tokens,
                          .models = a.models, .routes = a.routes};
  if (a.budget_usd >= 0) limits.budget_usd = a.budget_usd;
  auto period = serve::parse_budget_period(a.period);
  if (!period) return fmt::print(stderr, "owl keys create: --period: {}\n", period.message()), 1;
  limits.period = *period;
  if (!a.expires.empty()) {
    auto at = parse_expiry(a.expires, now_unix());
    if (!at) return fmt::print(stderr, "owl keys create: {}\n", at.message()), 1;
    limits.expires_unix = *at;
  }
  auto store = open_store(a);
  if (!store) return fmt::print(stderr, "owl keys create: {}\n", store.message()), 1;
  auto key = store.value()->create(a.name, limits, now_unix());
  if (!key) return fmt::print(stderr, "owl keys create: {}\n", key.message()), 1;
  fmt::print("{}\n", *key);
  fmt::print(stderr, "owl keys: created '{}'; the key above is shown only now (owl keeps its hash)\n", a.name);
  return 0;
}

int run_list(const KeysArgs& a) {
  auto store = open_store(a);
  if (!store) return fmt::print(stderr, "owl keys list: {}\n", store.message()), 1;
  auto keys = store.value()->list();
  if (!keys) return fmt::print(stderr, "owl keys list: {}\n", keys.message()), 1;
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const serve::KeyInfo& k : *keys) out.push_back(key_json(k, spent_now(**store, k)));
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("{:<16} {:<12} {:<8} {:>6} {:>8} {:>8} {:>10} {:>20} {:<20} {}\n", "NAME", "ID", "STATUS", "RPM", "TPM", "PARALLEL",
             "MAX_TOKENS", "SPENT / BUDGET", "EXPIRES", "MODELS");
  for (const serve::KeyInfo& k : *keys) {
    const serve::KeyLimits& l = k.limits;
    const std::string budget = l.budget_usd ? fmt::format("${:.4f} / ${:.2f} {}", spent_now(**store, k), *l.budget_usd,
                                                          serve::budget_period_name(l.period))
                                            : "-";
    std::vector<std::string> may = l.models;
    may.insert(may.end(), l.routes.begin(), l.routes.end());
    fmt::print("{:<16} {:<12} {:<8} {:>6} {:>8} {:>8} {:>10} {:>20} {:<20} {}\n", k.name, k.id, status(k),
               limit(l.rpm), limit(l.tpm), limit(l.max_parallel), limit(l.max_tokens), budget, utc(l.expires_unix),
               may.empty() ? "all" : fmt::format("{}", fmt::join(may, ",")));
  }
  return 0;
}

int run_show(const KeysArgs& a) {
  auto store = open_store(a);
  if (!store) return fmt::print(stderr, "owl keys show: {}\n", store.message()), 1;
  auto key = store.value()->find(a.name);
  if (!key) return fmt::print(stderr, "owl keys show: {}\n", key.message()), 1;
  fmt::print("{}\n", key_json(*key, spent_now(**store, *key)).dump(2));
  return 0;
}

int run_revoke(const KeysArgs& a) {
  auto store = open_store(a);
  if (!store) return fmt::print(stderr, "owl keys revoke: {}\n", store.message()), 1;
  if (auto s = store.value()->revoke(a.name, now_unix()); !s) return fmt::print(stderr, "owl keys revoke: {}\n", s.message()), 1;
  fmt::print(stderr, "owl keys: revoked '{}'; servers refuse it from their next request\n", a.name);
  return 0;
}

int run_rotate(const KeysArgs& a) {
  auto store = open_store(a);
  if (!store) return fmt::print(stderr, "owl keys rotate: {}\n", store.message()), 1;
  auto key = store.value()->rotate(a.name);
  if (!key) return fmt::print(stderr, "owl keys rotate: {}\n", key.message()), 1;
  fmt::print("{}\n", *key);
  fmt::print(stderr, "owl keys: rotated '{}': the old key no longer works; the new one above is shown only now\n", a.name);
  return 0;
}

}  // namespace

Command register_keys(CLI::App& root) {
  CLI::App* app = root.add_subcommand("keys", "API keys for owl serve --auth: create, list, show, revoke, rotate");
  app->require_subcommand(1);
  auto a = std::make_shared<KeysArgs>();
  app->add_option("--state", a->state, "State file (default: $OWL_STATE, else ~/.owl/state.db)");
  app->add_option("--redis", a->redis, "Keep the keys in Redis instead, shared by gateways: redis://HOST:PORT[/DB]");
  CLI::App* create = app->add_subcommand("create", "Make a key and print it once");
  create->add_option("--name", a->name, "Who the key is for (unique among keys in force)")->required();
  create->add_option("--rpm", a->rpm, "Requests per minute to the completion and embedding endpoints (0: no limit)")
      ->check(CLI::Range(int64_t{0}, kMaxLimit));
  create->add_option("--tpm", a->tpm, "Tokens per minute, prompt and completion (0: no limit)")->check(CLI::Range(int64_t{0}, kMaxLimit));
  create->add_option("--max-parallel", a->max_parallel, "Requests at once (0: no limit)")->check(CLI::Range(int64_t{0}, kMaxLimit));
  create->add_option("--max-tokens", a->max_tokens, "The most max_tokens a request may ask for, and its default (0: no cap)")
      ->check(CLI::Range(int64_t{0}, kMaxLimit));
  create->add_option("--budget-usd", a->budget_usd, "US dollars the key may spend per --period")->check(CLI::Range(0.0, 1e9));
  create->add_option("--period", a->period, "Budget period: day, month or total (UTC)")->capture_default_str();
  create->add_option("--models", a->models, "Models the key may use, comma-separated (default: all)")->delimiter(',');
  create->add_option("--routes", a->routes, "Routes the key may use, comma-separated")->delimiter(',');
  create->add_option("--expires", a->expires, "When the key stops working: a UTC date (2027-01-31) or a span (30d, 12h)");
  CLI::App* list = app->add_subcommand("list", "Every key with its limits and spend (never the keys themselves)");
  list->add_flag("--json", a->json, "As JSON");
  CLI::App* show = app->add_subcommand("show", "One key's limits and spend this period, as JSON");
  show->add_option("name", a->name, "The key's name")->required();
  CLI::App* revoke = app->add_subcommand("revoke", "Stop a key from working");
  revoke->add_option("name", a->name, "The key's name")->required();
  CLI::App* rotate = app->add_subcommand("rotate", "Give a key a new secret (same limits and spend) and print it once");
  rotate->add_option("name", a->name, "The key's name")->required();
  for (CLI::App* sub : {create, list, show, revoke, rotate}) {
    sub->add_option("--state", a->state, "State file (default: $OWL_STATE, else ~/.owl/state.db)");
    sub->add_option("--redis", a->redis, "Keep the keys in Redis instead, shared by gateways: redis://HOST:PORT[/DB]");
  }
  return {app, [a, create, list, show, revoke, rotate] {
            if (create->parsed()) return run_create(*a);
            if (list->parsed()) return run_list(*a);
            if (show->parsed()) return run_show(*a);
            if (revoke->parsed()) return run_revoke(*a);
            if (rotate->parsed()) return run_rotate(*a);
            return 1;
          }};
}

}  // namespace owl::cli
