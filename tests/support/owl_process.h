// The owl binary (OWL_BINARY) as a long-running process a test starts, signals and waits for,
// with its stderr in a temporary file.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

namespace owl::testing {

class OwlProcess {
 public:
  // `args` go through /bin/sh (exec'd, so the pid is owl's own).
  explicit OwlProcess(const std::string& args) {
    char path[] = "/tmp/owl_process_XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd >= 0) ::close(fd);
    log_path_ = path;
    const std::string command = "exec " + std::string(OWL_BINARY) + " " + args + " 2>" + log_path_ + " >/dev/null";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~OwlProcess() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::remove(log_path_.c_str());
  }
  OwlProcess(const OwlProcess&) = delete;
  OwlProcess& operator=(const OwlProcess&) = delete;

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Waits until stderr holds `text`; false at the timeout or when the process ended first.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (log().find(text) != std::string::npos) return true;
      if (!running()) return log().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // The port of "listening on http://HOST:PORT/", or 0.
  int port() const {
    std::smatch m;
    const std::string text = log();
    if (std::regex_search(text, m, std::regex("listening on http://[^:]+:([0-9]+)/"))) return std::stoi(m[1]);
    return 0;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  // The exit code (128 + the signal for a process a signal ended), or nullopt at the timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_code_;
  }

 private:
  bool running() {
    if (exited_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
    exited_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }

  pid_t pid_ = -1;
  std::string log_path_;
  bool exited_ = false;
  int exit_code_ = -1;
};

}  // namespace owl::testing
