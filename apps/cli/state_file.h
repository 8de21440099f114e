// Where `owl keys` and `owl serve --auth` keep API keys and spend: --state FILE, else $OWL_STATE,
// else ~/.owl/state.db (its folder created 0700).
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/result.h"

namespace owl::cli {

inline core::Result<std::string> state_file(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("OWL_STATE"); env != nullptr && *env != '\0') return std::string(env);
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return core::make_error("no --state FILE given, and neither OWL_STATE nor HOME is set");
  const std::string dir = std::string(home) + "/.owl";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return core::make_error("{}: {}", dir, std::strerror(errno));
  return dir + "/state.db";
}

}  // namespace owl::cli
