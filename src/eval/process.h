// A child process for the `command` scorer: argv run without a shell, a text on its stdin, its
// stdout and stderr collected, killed at a deadline.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace owl::eval {

struct ProcessResult {
  bool timed_out = false;  // killed at the deadline; the other fields are what came before
  int exit_status = 0;     // when it exited
  int signal = 0;          // when a signal ended it, not 0
  std::string out, err;    // the first MiB of each
};

// Runs argv[0] (found on PATH) in a process group of its own, writes `input` to its stdin and
// closes it, and waits at most `timeout_s` seconds for it to exit and close its output; then the
// whole group is killed. The child is always reaped. A command that exits without reading its
// stdin is no error (SIGPIPE is blocked in the calling thread while the call lasts, and one it
// raised is consumed). The error is a command that cannot start. Safe to call from several
// threads at once.
core::Result<ProcessResult> run_process(const std::vector<std::string>& argv, std::string_view input,
                                        double timeout_s);

}  // namespace owl::eval
