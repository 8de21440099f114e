#include "core/files.h"

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace owl::core {
namespace {

namespace fs = std::filesystem;

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("owl_files_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// Pages of [addr, addr + size) resident in memory, by mincore.
size_t resident_pages(const void* addr, size_t size) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((size + page - 1) / page);
  if (::mincore(const_cast<void*>(addr), size, vec.data()) != 0) return 0;
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

TEST_F(FilesTest, AtomicFileCommitWritesAndAbortLeavesNothing) {
  {
    auto f = AtomicFile::create(path("kept"));
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(f->write("hello "));
    ASSERT_TRUE(f->write_zeros(3));
    EXPECT_EQ(f->offset(), 9u);
    ASSERT_TRUE(f->commit());
  }
  auto text = read_file(path("kept"));
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, std::string("hello \0\0\0", 9));
  {
    auto f = AtomicFile::create(path("dropped"));
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->write("partial"));
  }
  EXPECT_FALSE(fs::exists(path("dropped")));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1u) << "a temporary file was left behind";
}

TEST_F(FilesTest, MappedFileNamesMissingAndNonRegularFiles) {
  auto missing = MappedFile::open(path("missing"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("missing"), std::string::npos);
  auto dir = MappedFile::open(dir_.string(), true);
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("not a regular file"), std::string::npos);
}

// A large committed file leaves the page cache (so that the next load can read it into huge
// pages), and a populated map of it has every page resident with the bytes written.
TEST_F(FilesTest, LargeCommitLeavesCacheAndPopulateMapsEveryPage) {
  const size_t size = size_t{64} << 20;
  std::vector<uint8_t> data(size);
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  {
    auto f = AtomicFile::create(path("big"));
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->write(data.data(), data.size()));
    ASSERT_TRUE(f->commit());
  }
  struct statfs st {};
  const bool in_memory_fs = ::statfs(dir_.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC;
  if (!in_memory_fs) {  // tmpfs pages have no disk copy and cannot leave memory
    auto lazy = MappedFile::open(path("big"));
    ASSERT_TRUE(lazy);
    const size_t pages = size / static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    // Dropping is a hint the kernel may refuse in part (another reader, writeback): most pages.
    EXPECT_LT(resident_pages(lazy->data(), lazy->size()), pages / 2);
  }
  auto map = MappedFile::open(path("big"), true);
  ASSERT_TRUE(map);
  ASSERT_EQ(map->size(), size);
  EXPECT_EQ(resident_pages(map->data(), map->size()), size / static_cast<size_t>(::sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(std::memcmp(map->data(), data.data(), size), 0);
}

// Resident pages of this process (/proc/self/statm), in bytes.
size_t process_resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total = 0, resident = 0;
  statm >> total >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

// release() takes the pages inside the range out of the process (the rest of the map stays),
// and a read brings the same bytes back.
TEST_F(FilesTest, ReleasedPagesLeaveTheProcessAndReadBack) {
  const size_t size = size_t{32} << 20;
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(i * 2654435761u >> 24);
  ASSERT_TRUE(write_file_atomic(path("r"), data));
  auto map = MappedFile::open(path("r"), true);
  ASSERT_TRUE(map);
  const size_t before = process_resident_bytes();
  map->release(map->data() + 1000, size - 2000);  // whole pages inside only
  const size_t after = process_resident_bytes();
  EXPECT_GT(before, after + (size_t{24} << 20)) << before << " " << after;
  EXPECT_EQ(std::memcmp(map->data(), data.data(), size), 0);
  map->release(map->data() + size - 10, 100);  // past the end: nothing outside the map
  EXPECT_EQ(std::memcmp(map->data(), data.data(), size), 0);
}

TEST_F(FilesTest, ReadFileRefusesADirectory) {
  auto text = read_file(dir_.string());
  ASSERT_FALSE(text);
  EXPECT_NE(text.error().message.find(dir_.string() + ": is a directory"), std::string::npos) << text.error().message;
  auto input = read_input(dir_.string());
  EXPECT_FALSE(input);
}

TEST_F(FilesTest, OutputPathIsCheckedBeforeTheWork) {
  EXPECT_TRUE(check_output_path(path("new.gguf")));
  auto dir = check_output_path(dir_.string());
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("is a directory"), std::string::npos) << dir.error().message;
  auto missing = check_output_path(path("no/such/dir/out.gguf"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos) << missing.error().message;
  auto atomic = AtomicFile::create(dir_.string());
  ASSERT_FALSE(atomic);
  EXPECT_NE(atomic.error().message.find("is a directory"), std::string::npos) << atomic.error().message;
}

}  // namespace
}  // namespace owl::core
