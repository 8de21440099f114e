// Unix seconds as UTC text, for logs, tables and messages.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

namespace owl::core {

// `format` as strftime takes it: "%Y-%m-%d", "%Y-%m-%dT%H:%MZ", ...
inline std::string format_utc(int64_t unix_s, const char* format) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[64];
  const size_t n = std::strftime(out, sizeof out, format, &tm);
  return std::string(out, n);
}

}  // namespace owl::core
