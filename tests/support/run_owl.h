// Runs the owl binary (OWL_BINARY, set by the test's CMake target) as a user would.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace owl::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

// `args` go through /bin/sh, so redirections work.
inline RunResult run_owl(const std::string& args) {
  const std::string command = std::string(OWL_BINARY) + " " + args + " 2>&1";
  RunResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.out.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace owl::testing
