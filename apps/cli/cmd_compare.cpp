// owl compare: KL divergence, top-1 agreement, perplexity, size and speed of a candidate model
// against a base model over a text.
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <limits>

#include "commands.h"
#include "common_options.h"
#include "core/files.h"
#include "eval/compare.h"
#include "format.h"

namespace owl::cli {
namespace {

struct CompareArgs {
  eval::CompareOptions options;
  std::string text_file;
  std::string eval_suite;
  bool json = false;
};

int run_compare(CompareArgs& a) {
  if (!a.eval_suite.empty()) {
    fmt::print(stderr, "owl compare: --eval needs owl eval, which is not built yet; use -f TEXT\n");
    return 1;
  }
  auto text = core::read_input(a.text_file);
  if (!text) return fail("owl compare", text.message());
  a.options.text = std::move(*text);
  if (::isatty(STDERR_FILENO)) a.options.on_progress = draw_chunk_progress;
  auto report = eval::compare_models(a.options);
  if (!report) return fail("owl compare", report.message());
  print_compare_report(*report, a.json);
  return 0;
}

}  // namespace

void print_compare_report(const eval::CompareReport& r, bool json) {
  if (json) {
    auto side = [](const eval::ModelSide& s) {
      return nlohmann::json{{"path", s.path}, {"file_size", s.file_size}, {"perplexity", s.perplexity},
                            {"gen_tokens_per_s", s.gen_tokens_per_s}};
    };
    nlohmann::json j{{"base", side(r.base)},         {"candidate", side(r.candidate)}, {"n_tokens", r.n_tokens},
                     {"kl_mean", r.kl_mean},         {"kl_p99", r.kl_p99},            {"kl_max", r.kl_max},
                     {"top1_agreement", r.top1_agreement}, {"ppl_ratio", r.ppl_ratio}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{:<10} {:>12} {:>12} {:>10}  {}\n", "", "size", "perplexity", "gen t/s", "file");
  for (const eval::ModelSide* s : {&r.base, &r.candidate}) {
    fmt::print("{:<10} {:>12} {:>12.4f} {:>10.1f}  {}\n", s == &r.base ? "base" : "candidate", human_bytes(s->file_size),
               s->perplexity, s->gen_tokens_per_s, s->path);
  }
  fmt::print("positions  {}\n", r.n_tokens);
  fmt::print("KL mean    {:.6f}\nKL p99     {:.6f}\nKL max     {:.6f}\n", r.kl_mean, r.kl_p99, r.kl_max);
  fmt::print("top-1      {:.2f}%\nPPL ratio  {:.4f}\nsize ratio {:.3f}\n", 100 * r.top1_agreement, r.ppl_ratio,
             r.base.file_size ? static_cast<double>(r.candidate.file_size) / static_cast<double>(r.base.file_size) : 0.0);
}

Command register_compare(CLI::App& root) {
  auto args = std::make_shared<CompareArgs>();
  eval::CompareOptions& o = args->options;
  CLI::App* app = root.add_subcommand("compare", "What a quantized (or changed) model costs: KL, top-1, perplexity, size, speed");
  app->add_option("base", o.base, "Reference model (e.g. the F16 or F32 file)")->required();
  app->add_option("candidate", o.candidate, "Model to judge (e.g. the quantized file)")->required();
  auto* f = app->add_option("-f,--file", args->text_file, "Text to score (-: standard input)");
  auto* e = app->add_option("--eval", args->eval_suite, "Eval suite (needs owl eval)");
  f->excludes(e);
  app->add_option("-c,--ctx-size,--ctx", o.n_ctx, "Tokens per chunk")->check(CLI::Range(int64_t{2}, kMaxCtx))->capture_default_str();
  app->add_option("--chunks", o.max_chunks, "At most this many chunks (0: all)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  app->add_option("--gen", o.n_gen, "Decode steps timed per model (0: skip speed)")
      ->check(CLI::Range(int64_t{0}, kMaxCtx))
      ->capture_default_str();
  add_threads_option(app, o.n_threads);
  app->add_flag("--json", args->json, "Print JSON");
  app->callback([app, args] {
    if (args->text_file.empty() && args->eval_suite.empty()) throw CLI::RequiredError("-f TEXT or --eval SUITE");
    (void)app;
  });
  return {app, [args] { return run_compare(*args); }};
}

}  // namespace owl::cli
