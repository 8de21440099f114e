// owl run: generate text from a prompt, streamed as it is produced.
#include <cstdio>

#include "commands.h"
#include "common_options.h"
#include "engine/session.h"
#include "lora_options.h"
#include "prompt_input.h"
#include "sampling_options.h"

namespace owl::cli {
namespace {

constexpr const char* kCommand = "owl run";

struct RunArgs {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  bool prompt_given = false;
  SamplingArgs sampling;
  int n_threads = 0;
  int n_gpu_layers = -1;
  int64_t n_ctx = 0;
  bool no_echo = false;
  bool no_bos = false;
  LoraArgs lora;
};

void print_stats(const engine::GenerateStats& stats) {
  const auto per_s = [](int64_t n, double ms) { return ms > 0 ? 1000.0 * static_cast<double>(n) / ms : 0.0; };
  fmt::print(stderr, "\nprompt: {} tokens, {:.1f} ms, {:.2f} tokens/s | generation: {} tokens, {:.1f} ms, {:.2f} tokens/s | {}\n",
             stats.n_prompt, stats.prompt_ms, per_s(stats.n_prompt, stats.prompt_ms), stats.n_generated,
             stats.generate_ms, per_s(stats.n_generated, stats.generate_ms), engine::finish_reason_name(stats.finish));
}

int run_run(RunArgs& args) {
  if (auto s = finish_sampling_args(args.sampling); !s) return fail(kCommand, s.message());
  if (auto s = finish_lora_args(args.lora); !s) return fail(kCommand, s.message());
  auto text = read_text_source({.text = args.prompt_given ? &args.prompt : nullptr, .file = args.prompt_file});
  if (!text) return fail(kCommand, text.message());
  args.prompt = std::move(*text);
  auto model = model::load_model(args.model);
  if (!model) return fail(kCommand, model.message());
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fail(kCommand, tok.message());
  auto adapters = load_adapters(args.lora.specs, **model);
  if (!adapters) return fail(kCommand, adapters.message());
  note_adapters(kCommand, args.lora.specs, adapters->get());
  if (auto s = attach_constraint(args.sampling, *tok); !s) return fail(kCommand, s.message());
  const int64_t n_ctx = context_size(**model, args.n_ctx, kCommand);
  auto ctx = model::make_context(**model, {.n_ctx = n_ctx, .n_seq = 1, .n_threads = args.n_threads});
  if (!ctx) return fail(kCommand, ctx.message());
  const std::vector<int32_t> prompt = tok->tokenize(args.prompt, {.add_special = !args.no_bos, .parse_special = true});
  if (prompt.empty()) return fail(kCommand, "the prompt gives no tokens");
  if (!args.no_bos) warn_double_bos(prompt, tok->bos(), kCommand);

  if (!args.no_echo) {
    std::fwrite(args.prompt.data(), 1, args.prompt.size(), stdout);
    std::fflush(stdout);
  }
  engine::Session session(**model, *tok, **ctx);
  auto stats = session.generate({.prompt = prompt, .params = args.sampling.generate, .adapters = *adapters},
                                [](std::string_view piece, const sample::Sampled&) {
                                  std::fwrite(piece.data(), 1, piece.size(), stdout);
                                  std::fflush(stdout);
                                  return true;
                                });
  std::fputc('\n', stdout);
  if (!stats) return fail(kCommand, stats.message());
  print_stats(*stats);
  return 0;
}

}  // namespace

Command register_run(CLI::App& root) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* app = root.add_subcommand("run", "Generate text from a prompt, streamed as it is produced");
  app->add_option("-m,--model", args->model, "GGUF model file")->required();
  auto* p = app->add_option("-p,--prompt", args->prompt,
                            "Prompt text (special tokens are parsed); without -p or -f, read from piped standard input");
  auto* f = app->add_option("-f,--file", args->prompt_file, "Read the prompt from a file (-: standard input)");
  p->excludes(f);
  add_threads_option(app, args->n_threads);
  add_ctx_option(app, args->n_ctx);
  add_gpu_layers_option(app, args->n_gpu_layers);
  app->add_flag("--no-echo", args->no_echo, "Do not print the prompt before the generated text");
  app->add_flag("--no-bos", args->no_bos, "Do not add the BOS token");
  add_lora_options(app, args->lora);
  add_sampling_options(app, args->sampling);
  return {app, [args, app] {
            args->prompt_given = app->count("--prompt") > 0;
            note_gpu_layers(app, kCommand);
            return run_run(*args);
          }};
}

}  // namespace owl::cli
