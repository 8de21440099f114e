// owl usage: what the answers recorded in a ledger (owl serve --ledger) cost, summed by day,
// route, model or user.
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "router/ledger.h"
#include "state_file.h"

namespace owl::cli {
namespace {

struct UsageArgs {
  std::string ledger;
  std::string since;  // YYYY-MM-DD (UTC)
  std::string by = "day";
  bool json = false;
};

// Midnight UTC of a YYYY-MM-DD date, as unix seconds.
core::Result<int64_t> parse_day(const std::string& day) {
  std::tm tm{};
  const char* end = strptime(day.c_str(), "%Y-%m-%d", &tm);
  if (end == nullptr || *end != '\0') return core::make_error("--since '{}' is not a date (YYYY-MM-DD)", day);
  return static_cast<int64_t>(timegm(&tm));
}

int run_usage(const UsageArgs& args) {
  auto key = router::parse_usage_key(args.by);
  if (!key) return fmt::print(stderr, "owl usage: --by {}\n", key.message()), 1;
  int64_t since = 0;
  if (!args.since.empty()) {
    auto day = parse_day(args.since);
    if (!day) return fmt::print(stderr, "owl usage: {}\n", day.message()), 1;
    since = *day;
  }
  if (!args.ledger.starts_with("redis://")) {
    std::FILE* probe = std::fopen(args.ledger.c_str(), "rb");
    if (probe == nullptr) return fmt::print(stderr, "owl usage: --ledger {}: no such file\n", args.ledger), 1;
    std::fclose(probe);
  }
  auto ledger = open_ledger(args.ledger);
  if (!ledger) return fmt::print(stderr, "owl usage: {}\n", ledger.message()), 1;
  auto rows = (*ledger)->usage(*key, since);
  if (!rows) return fmt::print(stderr, "owl usage: {}\n", rows.message()), 1;
  if (args.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const router::UsageRow& r : *rows) {
      out.push_back({{args.by, r.key}, {"requests", r.requests}, {"prompt_tokens", r.prompt_tokens},
                     {"completion_tokens", r.completion_tokens}, {"cost_usd", r.cost_usd}});
    }
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("{:<24} {:>9} {:>14} {:>18} {:>12}\n", args.by, "requests", "prompt tokens", "completion tokens", "cost USD");
  router::UsageRow total{.key = "total"};
  for (const router::UsageRow& r : *rows) {
    fmt::print("{:<24} {:>9} {:>14} {:>18} {:>12.6f}\n", r.key.empty() ? "-" : r.key, r.requests, r.prompt_tokens,
               r.completion_tokens, r.cost_usd);
    total.requests += r.requests;
    total.prompt_tokens += r.prompt_tokens;
    total.completion_tokens += r.completion_tokens;
    total.cost_usd += r.cost_usd;
  }
  fmt::print("{:<24} {:>9} {:>14} {:>18} {:>12.6f}\n", total.key, total.requests, total.prompt_tokens, total.completion_tokens,
             total.cost_usd);
  return 0;
}

}  // namespace

Command register_usage(CLI::App& root) {
  auto args = std::make_shared<UsageArgs>();
  CLI::App* app = root.add_subcommand("usage", "What the answers recorded by owl serve --ledger cost, by day, route, model or user");
  app->add_option("--ledger", args->ledger, "The ledger (owl serve --ledger): its file, or redis://HOST:PORT")->required();
  app->add_option("--since", args->since, "Only answers from this day on (YYYY-MM-DD, UTC)");
  app->add_option("--by", args->by, "Sum by: day, route, model, user")->capture_default_str();
  app->add_flag("--json", args->json, "A JSON array instead of a table");
  return {app, [args] { return run_usage(*args); }};
}

}  // namespace owl::cli
