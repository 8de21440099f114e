// The request log as a file (`owl serve --log-file FILE`): one JSON line per request, the file
// created 0600 (with --log-content it holds prompts, redacted), rotated when a line would take it
// past max_bytes (FILE becomes FILE.<UTC time>[-n], and a new FILE starts), and rotated files older
// than keep_days removed at each rotation and at open.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/result.h"

namespace owl::serve {

struct RequestLogOptions {
  std::string path;
  uint64_t max_bytes = uint64_t{100} << 20;  // 0: never rotate
  int keep_days = 30;                        // 0: keep every rotated file
};

// Threading: write() may be called from any thread.
class RequestLog {
 public:
  // Opens (appends to) the file, creating it 0600; errors name the file.
  static core::Result<std::unique_ptr<RequestLog>> open(RequestLogOptions options);
  ~RequestLog();
  RequestLog(const RequestLog&) = delete;
  RequestLog& operator=(const RequestLog&) = delete;

  // Appends `line` and a newline, rotating first when the line would not fit. A failure to write
  // is reported once on stderr and the line is lost; the server goes on.
  void write(std::string_view line);
  // Files removed by retention so far (for tests and the log of the server).
  int removed() const;

 private:
  explicit RequestLog(RequestLogOptions options) : options_(std::move(options)) {}
  core::Status open_locked();
  void rotate_locked();
  void prune_locked();
  RequestLogOptions options_;
  mutable std::mutex mutex_;
  std::FILE* file_ = nullptr;  // guarded by mutex_
  uint64_t size_ = 0;          // guarded by mutex_
  bool failed_ = false;        // guarded by mutex_: a write failure was reported
  int removed_ = 0;            // guarded by mutex_
};

}  // namespace owl::serve
