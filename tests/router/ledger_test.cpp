// The cost ledger: entries summed by day, route, model and user, from a day on; the file is
// private to its owner; a file that is not a ledger is an error naming it.
#include "router/ledger.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace owl::router {
namespace {

std::string temp_path(const std::string& name) {
  return "/tmp/owl_ledger_" + std::to_string(::getpid()) + "_" + name;
}

void remove_all(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

TEST(Ledger, SumsByEveryKeyFromADayOn) {
  const std::string path = temp_path("sums.db");
  remove_all(path);
  {
    auto ledger = Ledger::open(path);
    ASSERT_TRUE(ledger.ok()) << ledger.message();
    const int64_t day1 = 1'796'342'400;  // 2026-12-04 00:00 UTC
    const int64_t day2 = day1 + 86'400;
    ASSERT_TRUE((*ledger)->record({.unix_s = day1 + 10, .route = "auto", .model = "small", .user = "ann", .decision = "cascade",
                                   .prompt_tokens = 10, .completion_tokens = 5, .cost_usd = 0.001}).ok());
    ASSERT_TRUE((*ledger)->record({.unix_s = day2 + 10, .route = "auto", .model = "big", .user = "bob", .decision = "escalated",
                                   .prompt_tokens = 20, .completion_tokens = 8, .cost_usd = 0.02}).ok());
    ASSERT_TRUE((*ledger)->record({.unix_s = day2 + 20, .route = "", .model = "big", .user = "ann",
                                   .prompt_tokens = 1, .completion_tokens = 1, .cost_usd = 0.005}).ok());
    auto by_day = (*ledger)->usage(UsageKey::kDay, 0);
    ASSERT_TRUE(by_day.ok()) << by_day.message();
    ASSERT_EQ(by_day->size(), 2u);
    EXPECT_EQ((*by_day)[0].key, "2026-12-05");  // the larger cost first
    EXPECT_EQ((*by_day)[0].requests, 2);
    EXPECT_EQ((*by_day)[0].prompt_tokens, 21);
    EXPECT_NEAR((*by_day)[0].cost_usd, 0.025, 1e-12);
    EXPECT_EQ((*by_day)[1].key, "2026-12-04");
    auto by_model = (*ledger)->usage(UsageKey::kModel, 0);
    ASSERT_EQ(by_model->size(), 2u);
    EXPECT_EQ((*by_model)[0].key, "big");
    EXPECT_EQ((*by_model)[0].completion_tokens, 9);
    auto by_user = (*ledger)->usage(UsageKey::kUser, day2);  // from the second day on
    ASSERT_EQ(by_user->size(), 2u);
    EXPECT_EQ((*by_user)[0].key, "bob");
    EXPECT_EQ((*by_user)[1].key, "ann");
    EXPECT_EQ((*by_user)[1].requests, 1);
    auto by_route = (*ledger)->usage(UsageKey::kRoute, 0);
    ASSERT_EQ(by_route->size(), 2u);
    EXPECT_EQ((*by_route)[1].key, "");  // requests that named a model
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Reopened: the entries are still there.
  auto again = Ledger::open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->usage(UsageKey::kDay, 0)->size(), 2u);
  remove_all(path);
}

TEST(Ledger, AFileThatIsNotALedgerIsAnErrorNamingIt) {
  const std::string path = temp_path("garbage.db");
  std::ofstream(path) << std::string(4096, 'x');
  auto ledger = Ledger::open(path);
  ASSERT_FALSE(ledger.ok());
  EXPECT_NE(ledger.message().find("ledger " + path), std::string::npos) << ledger.message();
  remove_all(path);
  auto nowhere = Ledger::open("/nonexistent/dir/ledger.db");
  ASSERT_FALSE(nowhere.ok());
  EXPECT_NE(nowhere.message().find("/nonexistent/dir/ledger.db"), std::string::npos) << nowhere.message();
  EXPECT_EQ(*parse_usage_key("user"), UsageKey::kUser);
  EXPECT_NE(parse_usage_key("week").message().find("'week' is not one of: day, route, model, user"), std::string::npos);
}

}  // namespace
}  // namespace owl::router
