// Human-readable numbers for the command-line output.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace owl::cli {

// 1185376 -> "1.19 MB" (decimal units, as file managers and llama.cpp print sizes).
inline std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

// 292352 -> "292.35 K"
inline std::string human_count(int64_t n) {
  const char* units[] = {"", " K", " M", " B", " T"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  return u == 0 ? fmt::format("{}", n) : fmt::format("{:.2f}{}", v, units[u]);
}

}  // namespace owl::cli
