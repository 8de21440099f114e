// owl run: generate text from a prompt, streamed as it is produced.
#include <cstdio>

#include "commands.h"
#include "core/files.h"
#include "engine/session.h"
#include "sampling_options.h"

namespace owl::cli {
namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  SamplingArgs sampling;
  int n_threads = 0;
  int64_t n_ctx = 0;
  bool no_echo = false;
  bool no_bos = false;
};

int run_run(RunArgs& args) {
  if (auto s = finish_sampling_args(args.sampling); !s) return fmt::print(stderr, "owl run: {}\n", s.message()), 1;
  if (!args.prompt_file.empty()) {
    auto text = core::read_file(args.prompt_file);
    if (!text) return fmt::print(stderr, "owl run: {}\n", text.message()), 1;
    args.prompt = std::move(*text);
  }
  auto model = model::load_model(args.model);
  if (!model) return fmt::print(stderr, "owl run: {}\n", model.message()), 1;
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fmt::print(stderr, "owl run: {}\n", tok.message()), 1;
  auto ctx = model::make_context(**model, {.n_ctx = args.n_ctx, .n_seq = 1, .n_threads = args.n_threads});
  if (!ctx) return fmt::print(stderr, "owl run: {}\n", ctx.message()), 1;
  const std::vector<int32_t> prompt = tok->tokenize(args.prompt, {.add_special = !args.no_bos, .parse_special = true});
  if (prompt.empty()) return fmt::print(stderr, "owl run: the prompt gives no tokens\n"), 1;

  if (!args.no_echo) {
    std::fwrite(args.prompt.data(), 1, args.prompt.size(), stdout);
    std::fflush(stdout);
  }
  engine::Session session(**model, *tok, **ctx);
  auto stats = session.generate({.prompt = prompt, .params = args.sampling.generate},
                                [](std::string_view text, const sample::Sampled&) {
                                  std::fwrite(text.data(), 1, text.size(), stdout);
                                  std::fflush(stdout);
                                  return true;
                                });
  std::fputc('\n', stdout);
  if (!stats) return fmt::print(stderr, "owl run: {}\n", stats.message()), 1;
  const auto per_s = [](int64_t n, double ms) { return ms > 0 ? 1000.0 * static_cast<double>(n) / ms : 0.0; };
  fmt::print(stderr, "\nprompt: {} tokens, {:.1f} ms, {:.2f} tokens/s | generation: {} tokens, {:.1f} ms, {:.2f} tokens/s | {}\n",
             stats->n_prompt, stats->prompt_ms, per_s(stats->n_prompt, stats->prompt_ms), stats->n_generated,
             stats->generate_ms, per_s(stats->n_generated, stats->generate_ms), engine::finish_reason_name(stats->finish));
  return 0;
}

}  // namespace

Command register_run(CLI::App& root) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* app = root.add_subcommand("run", "Generate text from a prompt, streamed as it is produced");
  app->add_option("-m,--model", args->model, "GGUF model file")->required();
  auto* p = app->add_option("-p,--prompt", args->prompt, "Prompt text (special tokens are parsed)");
  auto* f = app->add_option("-f,--file", args->prompt_file, "Read the prompt from a file");
  p->excludes(f);
  app->add_option("-t,--threads", args->n_threads, "Threads (0: all cores)")->capture_default_str();
  app->add_option("-c,--ctx-size", args->n_ctx, "Context size (0: the model's, at most 4096)")->capture_default_str();
  app->add_flag("--no-echo", args->no_echo, "Do not print the prompt before the generated text");
  app->add_flag("--no-bos", args->no_bos, "Do not add the BOS token");
  add_sampling_options(app, args->sampling);
  return {app, [args] { return run_run(*args); }};
}

}  // namespace owl::cli
