#include "serve/request_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

namespace owl::serve {
namespace {

std::string utc_stamp() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y%m%dT%H%M%S", &tm);
  return fmt::format("{}.{:03d}Z", out, ts.tv_nsec / 1000000);
}

}  // namespace

core::Result<std::unique_ptr<RequestLog>> RequestLog::open(RequestLogOptions options) {
  if (options.path.empty()) return core::make_error("--log-file: no file named");
  std::unique_ptr<RequestLog> log(new RequestLog(std::move(options)));
  std::lock_guard<std::mutex> lock(log->mutex_);
  if (auto s = log->open_locked(); !s) return s.error();
  log->prune_locked();
  return log;
}

RequestLog::~RequestLog() {
  if (file_ != nullptr) std::fclose(file_);
}

core::Status RequestLog::open_locked() {
  const int fd = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return core::make_error("--log-file {}: {}", options_.path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  if ((st.st_mode & 077) != 0) ::fchmod(fd, 0600);  // a file that was readable by others is no longer
  file_ = ::fdopen(fd, "a");
  if (file_ == nullptr) {
    ::close(fd);
    return core::make_error("--log-file {}: {}", options_.path, std::strerror(errno));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  return {};
}

void RequestLog::rotate_locked() {
  std::fclose(file_);
  file_ = nullptr;
  std::string rotated = options_.path + "." + utc_stamp();
  struct stat st {};
  for (int n = 1; ::stat(rotated.c_str(), &st) == 0; ++n) rotated = fmt::format("{}.{}-{}", options_.path, utc_stamp(), n);  // within a millisecond
  if (std::rename(options_.path.c_str(), rotated.c_str()) != 0) {
    fmt::print(stderr, "owl serve: --log-file {}: cannot rotate to {}: {}\n", options_.path, rotated, std::strerror(errno));
  }
  if (auto s = open_locked(); !s) fmt::print(stderr, "owl serve: {}\n", s.message());
  prune_locked();
}

void RequestLog::prune_locked() {
  if (options_.keep_days <= 0) return;
  namespace fs = std::filesystem;
  const fs::path path(options_.path);
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const std::string prefix = path.filename().string() + ".";
  const auto limit = fs::file_time_type::clock::now() - std::chrono::hours(24) * options_.keep_days;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with(prefix) || !e.is_regular_file(ec)) continue;
    if (e.last_write_time(ec) < limit && fs::remove(e.path(), ec)) ++removed_;
  }
}

void RequestLog::write(std::string_view line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (file_ != nullptr && options_.max_bytes > 0 && size_ > 0 && size_ + line.size() + 1 > options_.max_bytes) rotate_locked();
  if (file_ == nullptr) return;
  const bool ok = std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fputc('\n', file_) != EOF &&
                  std::fflush(file_) == 0;
  if (ok) {
    size_ += line.size() + 1;
    failed_ = false;
  } else if (!failed_) {
    failed_ = true;
    fmt::print(stderr, "owl serve: --log-file {}: a request line was lost: {}\n", options_.path, std::strerror(errno));
  }
}

int RequestLog::removed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return removed_;
}

}  // namespace owl::serve
