// The request log file: created 0600, rotated before a line would pass its size, old rotations
// removed, and every line kept whole in exactly one file.
#include "serve/request_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace owl::serve {
namespace {

namespace fs = std::filesystem;

class RequestLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("owl_request_log_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    path = (dir / "requests.jsonl").string();
  }
  void TearDown() override { fs::remove_all(dir); }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir;
  std::string path;
};

TEST_F(RequestLogTest, RotatesBeforeALineWouldPassTheSizeAndKeepsEveryLine) {
  ::umask(022);
  auto log = RequestLog::open({.path = path, .max_bytes = 100, .keep_days = 0});
  ASSERT_TRUE(log.ok()) << log.message();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) (*log)->write(std::string(R"({"t":)") + std::to_string(t) + R"(,"i":)" + std::to_string(100 + i) + "}");
    });
  }
  for (auto& t : threads) t.join();
  log->reset();
  int lines = 0;
  for (const std::string& name : files()) {
    const std::string file = (dir / name).string();
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600) << name;
    EXPECT_LE(st.st_size, 100) << name;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line); ++lines) EXPECT_EQ(line.size(), 15u) << name << ": " << line;
  }
  EXPECT_EQ(lines, 100);
  EXPECT_GE(files().size(), 16u);  // 6 lines of 16 bytes a file
}

TEST_F(RequestLogTest, RotatedFilesPastTheirDaysAreRemoved) {
  const std::string old_rotation = path + ".20200101T000000.000Z";
  const std::string recent_rotation = path + ".20991231T000000.000Z";
  std::ofstream(old_rotation) << "{}\n";
  std::ofstream(recent_rotation) << "{}\n";
  std::ofstream(dir / "other.jsonl.1") << "{}\n";  // not this log's
  const auto long_ago = fs::file_time_type::clock::now() - std::chrono::hours(24 * 40);
  fs::last_write_time(old_rotation, long_ago);
  fs::last_write_time(dir / "other.jsonl.1", long_ago);
  auto log = RequestLog::open({.path = path, .max_bytes = 0, .keep_days = 30});
  ASSERT_TRUE(log.ok()) << log.message();
  EXPECT_EQ((*log)->removed(), 1);
  EXPECT_EQ(files(), (std::vector<std::string>{"other.jsonl.1", "requests.jsonl", "requests.jsonl.20991231T000000.000Z"}));
}

TEST_F(RequestLogTest, AFileThatCannotBeOpenedIsNamed) {
  auto log = RequestLog::open({.path = (dir / "missing" / "x.jsonl").string()});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.message().find("missing/x.jsonl: No such file or directory"), std::string::npos) << log.message();
}

}  // namespace
}  // namespace owl::serve
