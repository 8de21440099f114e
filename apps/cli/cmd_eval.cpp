// owl eval: every candidate of a suite (models × quantizations × adapters, hosted APIs) on its
// cases; a table of accuracy, latency, memory, size and cost, and the smallest candidate that
// passes (docs/eval.md).
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include <atomic>
#include <chrono>

#include <fmt/format.h>

#include "commands.h"
#include "common_options.h"
#include "core/files.h"
#include "eval/report.h"
#include "eval/runner.h"
#include "eval/suite.h"

namespace owl::cli {
namespace {

constexpr const char* kCommand = "owl eval";

struct EvalArgs {
  std::string suite;
  std::string json_out;
  std::string html_out;
  std::vector<std::string> only;
  int parallel = 8;
  int n_threads = 0;
  bool no_cache = false;
  std::string cache_dir;
  bool quiet = false;
};

std::atomic<bool> g_interrupted{false};

void on_sigint(int) {
  if (g_interrupted.exchange(true)) _exit(130);  // a second Ctrl-C: stop now
}

int run_eval(const EvalArgs& args) {
  if (!args.json_out.empty()) {
    if (int rc = fail_unless_writable(kCommand, args.json_out, "-o")) return rc;
  }
  if (!args.html_out.empty()) {
    if (int rc = fail_unless_writable(kCommand, args.html_out, "--html")) return rc;
  }
  auto suite = eval::load_suite(args.suite);
  if (!suite) return fail(kCommand, suite.message());

  eval::RunOptions options;
  options.cache_dir = args.cache_dir.empty() ? eval::default_cache_dir() : args.cache_dir;
  options.use_cache = !args.no_cache;
  options.parallel = args.parallel;
  options.n_threads = args.n_threads;
  options.only = args.only;
  options.interrupted = &g_interrupted;
  const bool tty = isatty(STDERR_FILENO) != 0;
  auto start = std::chrono::steady_clock::now();
  const eval::Candidate* current = nullptr;
  options.on_note = [&](const std::string& line) {
    if (!args.quiet) fmt::print(stderr, "{}\n", line);
  };
  options.on_progress = [&](const eval::Candidate& c, size_t done, size_t total, size_t passed) {
    if (args.quiet) return;
    if (current != &c) current = &c, start = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total - done) : 0;
    // On a terminal one line per candidate, redrawn; in a log, the end of each candidate only.
    if (tty || done == total) {
      fmt::print(stderr, "{}{}: {}/{} cases, pass rate so far {:.2f}, ETA {:.0f} s{}", tty ? "\r\x1b[K" : "", c.id, done, total,
                 done > 0 ? static_cast<double>(passed) / static_cast<double>(done) : 0.0, eta, done == total ? "\n" : "");
      std::fflush(stderr);
    }
  };
  std::signal(SIGINT, on_sigint);
  auto runs = eval::run_suite(*suite, options);
  std::signal(SIGINT, SIG_DFL);
  if (!runs) return fail(kCommand, runs.message());
  if (tty && !args.quiet) fmt::print(stderr, "\r\x1b[K");
  const eval::Report report = eval::summarize(*suite, *runs);
  fmt::print("{}", eval::report_table(*suite, report));
  if (!args.json_out.empty()) {
    if (auto s = core::write_file_atomic(args.json_out, eval::report_json(*suite, report, *runs).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n"); !s) return fail(kCommand, s.message());
  }
  if (!args.html_out.empty()) {
    if (auto s = core::write_file_atomic(args.html_out, eval::report_html(*suite, report, *runs)); !s) return fail(kCommand, s.message());
  }
  if (g_interrupted.load()) {
    fmt::print(stderr, "owl eval: interrupted; what was computed is cached, and running the same command again resumes\n");
    return 130;
  }
  // The exit status says whether a candidate passes, for scripts and CI.
  return report.verdict.smallest_passing.empty() ? 3 : 0;
}

}  // namespace

Command register_eval(CLI::App& root) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* app = root.add_subcommand("eval", "Evaluate models, quantizations, adapters and hosted APIs on a suite of cases; "
                                              "name the smallest that passes");
  app->add_option("suite", args->suite, "Suite file (YAML; see docs/eval.md)")->required();
  app->add_option("-o,--output", args->json_out, "Write the report as JSON");
  app->add_option("--html", args->html_out, "Write the report as one self-contained HTML page");
  app->add_option("--only", args->only, "Run only this candidate (its id as the table shows it; repeatable)");
  app->add_option("-j,--parallel", args->parallel, "Cases at once per candidate (engine sequences, or requests to a hosted API)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  add_threads_option(app, args->n_threads);
  app->add_flag("--no-cache", args->no_cache, "Compute every output again (results are still stored for the next run)");
  app->add_option("--cache-dir", args->cache_dir, "Folder for quantized copies and cached results (default: ~/.cache/owl/eval)");
  app->add_flag("-q,--quiet", args->quiet, "No progress on standard error");
  return {app, [args] { return run_eval(*args); }};
}

}  // namespace owl::cli
