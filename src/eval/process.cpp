// run_process: posix_spawnp with three pipes and a poll loop that feeds stdin and drains stdout
// and stderr together, so a child that writes much before reading cannot deadlock with us.
#include "eval/process.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <utility>

extern char** environ;

namespace owl::eval {

using core::make_error;
using core::Result;

namespace {

constexpr size_t kMaxCapture = size_t{1} << 20;  // bytes kept of stdout and of stderr

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  UniqueFd read, write;
};

// Both ends close on exec, so that children spawned by other threads do not inherit them (which
// would keep our reads from ever seeing EOF); posix_spawn's dup2 clears the flag on 0, 1 and 2.
Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error("pipe: {}", std::strerror(errno));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// SIGPIPE blocked in this thread for the object's life: writing to a child that has exited then
// fails with EPIPE instead of killing the process. The signal such a write raises stays pending
// on the thread, and is consumed before the old mask comes back (unless one was pending before).
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_set_);
    sigaddset(&pipe_set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set_, &old_mask_);
    was_pending_ = pending();
  }
  ~SigpipeBlock() {
    if (!was_pending_ && pending()) {
      const timespec now{};
      while (sigtimedwait(&pipe_set_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

  const sigset_t& old_mask() const { return old_mask_; }

 private:
  bool pending() const {
    sigset_t set;
    sigpending(&set);
    return sigismember(&set, SIGPIPE) == 1;
  }
  sigset_t pipe_set_;
  sigset_t old_mask_;
  bool was_pending_ = false;
};

// The child gets the caller's original signal mask and SIGPIPE's default action (the caller may
// ignore it, and an ignored signal stays ignored across exec), and a process group of its own so
// that a timeout kills what it started too (`sh -c 'sleep 60'`).
Result<pid_t> spawn(const std::vector<std::string>& argv, const sigset_t& child_mask, int in, int out, int err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &child_mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return make_error("cannot run '{}': {}", argv[0], std::strerror(rc));
  return pid;
}

// Appends what is readable on `fd` to `out` (up to kMaxCapture; the rest is read and dropped);
// closes `fd` at EOF or on an error.
void drain(UniqueFd& fd, std::string& out) {
  char buf[65536];
  const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  if (n > 0) {
    out.append(buf, std::min(static_cast<size_t>(n), kMaxCapture - std::min(kMaxCapture, out.size())));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    fd.reset();
  }
}

// Writes what the pipe takes of input[written..]; closes `fd` when all is written or the child
// has closed its end (EPIPE).
void feed(UniqueFd& fd, std::string_view input, size_t& written) {
  const ssize_t n = ::write(fd.get(), input.data() + written, input.size() - written);
  if (n > 0) written += static_cast<size_t>(n);
  if (written == input.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) fd.reset();
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

Result<ProcessResult> run_process(const std::vector<std::string>& argv, std::string_view input, double timeout_s) {
  if (argv.empty() || argv[0].empty()) return make_error("no command");
  auto in = make_pipe();
  if (!in.ok()) return in.error();
  auto out = make_pipe();
  if (!out.ok()) return out.error();
  auto err = make_pipe();
  if (!err.ok()) return err.error();
  const SigpipeBlock block;
  auto pid = spawn(argv, block.old_mask(), in->read.get(), out->write.get(), err->write.get());
  if (!pid.ok()) return pid.error();
  in->read.reset();
  out->write.reset();
  err->write.reset();
  for (const UniqueFd* fd : {&in->write, &out->read, &err->read}) {
    ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
  }
  if (input.empty()) in->write.reset();

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(std::max(0.0, timeout_s)));
  ProcessResult result;
  size_t written = 0;
  int status = 0;
  bool reaped = false;
  while (!reaped) {
    const double left_ms = std::chrono::duration<double, std::milli>(deadline - Clock::now()).count();
    if (left_ms <= 0) {
      result.timed_out = true;
      break;
    }
    const int wait_ms = static_cast<int>(std::min(std::ceil(left_ms), 1e6));
    pollfd fds[3];
    UniqueFd* owners[3];
    nfds_t n = 0;
    const auto watch = [&](UniqueFd& fd, short events) {
      if (!fd.open()) return;
      fds[n] = pollfd{fd.get(), events, 0};
      owners[n++] = &fd;
    };
    watch(in->write, POLLOUT);
    watch(out->read, POLLIN);
    watch(err->read, POLLIN);
    if (n == 0) {  // all pipes closed: wait for the exit, polling so the deadline holds
      const pid_t r = ::waitpid(*pid, &status, WNOHANG);
      // ECHILD: the caller ignores SIGCHLD, so the kernel reaped it.
      reaped = r == *pid || (r < 0 && errno == ECHILD);
      if (!reaped) ::poll(nullptr, 0, std::min(wait_ms, 10));
      continue;
    }
    if (::poll(fds, n, wait_ms) < 0) continue;  // EINTR
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (owners[i] == &in->write) {
        feed(in->write, input, written);
      } else {
        drain(*owners[i], owners[i] == &out->read ? result.out : result.err);
      }
    }
  }
  if (!reaped) {
    ::kill(-*pid, SIGKILL);
    ::kill(*pid, SIGKILL);  // in case it left its group
    status = wait_for(*pid);
  }
  if (WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
  if (WIFSIGNALED(status) && !result.timed_out) result.signal = WTERMSIG(status);
  return result;
}

}  // namespace owl::eval
