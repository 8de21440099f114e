// owl logits: the logits of every prompt position and the greedy continuation, in the format of
// llama.cpp's reference dumps (../shared/reference), so the two can be compared directly.
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common_options.h"
#include "core/files.h"
#include "engine/session.h"
#include "lora_options.h"
#include "model/forward.h"
#include "prompt_input.h"
#include "tokenizer/tokenizer.h"

namespace owl::cli {
namespace {

constexpr const char* kCommand = "owl logits";

struct LogitsArgs {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  bool prompt_given = false;
  std::string output;
  int n_greedy = 32;
  int64_t n_ctx = 0;  // 0: the model's training context
  bool no_bos = false;
  int n_threads = 0;
  int n_gpu_layers = -1;
  LoraArgs lora;
};

// The positions the prompt and the greedy continuation take, checked against the context.
core::Result<int64_t> positions(const LogitsArgs& args, const model::Model& model, size_t n_tokens) {
  const int64_t limit = args.n_ctx > 0 ? args.n_ctx : model.config.n_ctx_train;
  const int64_t need = static_cast<int64_t>(n_tokens) + args.n_greedy;
  if (limit > 0 && need > limit) {
    return core::make_error("the prompt's {} tokens and -n {} greedy tokens need {} positions, more than the context of {}{}",
                            n_tokens, args.n_greedy, need, limit, args.n_ctx > 0 ? " (-c)" : " (the model's)");
  }
  return need + 1;
}

// Six significant digits, as the reference dumps print them.
nlohmann::json row_json(const float* x, int64_t n) {
  nlohmann::json row = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) row.push_back(std::stod(fmt::format("{:.6g}", x[i])));
  return row;
}

int run_logits(LogitsArgs& args) {
  if (auto s = finish_lora_args(args.lora); !s) return fail(kCommand, s.message());
  if (int rc = fail_unless_writable(kCommand, args.output, "-o")) return rc;
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
  const std::vector<int32_t> tokens = tok->tokenize(args.prompt, {.add_special = !args.no_bos, .parse_special = true});
  if (tokens.empty()) return fail(kCommand, "the prompt gives no tokens");
  if (!args.no_bos) warn_double_bos(tokens, tok->bos(), kCommand);
  const int64_t n_vocab = (*model)->config.n_vocab;
  if (args.n_ctx > 0) context_size(**model, args.n_ctx, kCommand);
  auto n_ctx = positions(args, **model, tokens.size());
  if (!n_ctx) return fail(kCommand, n_ctx.message());
  auto ctx = model::make_context(**model, {.n_ctx = *n_ctx, .n_seq = 1, .n_threads = args.n_threads});
  if (!ctx) return fail(kCommand, ctx.message());

  model::Batch batch;
  for (size_t i = 0; i < tokens.size(); ++i) batch.add(tokens[i], static_cast<int32_t>(i), 0, true, adapters->get());
  std::vector<float> logits(tokens.size() * static_cast<size_t>(n_vocab));
  if (auto s = model::forward(**model, batch, **ctx, logits.data()); !s) {
    return fail(kCommand, s.message());
  }
  nlohmann::json out;
  out["model"] = args.model;
  out["prompt"] = args.prompt;
  out["add_bos"] = !args.no_bos;
  out["n_vocab"] = n_vocab;
  out["tokens"] = tokens;
  // One adapter as the reference dumps name it; several as a list.
  if (args.lora.specs.size() == 1) {
    out["adapter"] = args.lora.specs[0].path;
    out["adapter_scale"] = args.lora.specs[0].scale;
  } else if (!args.lora.specs.empty()) {
    out["adapters"] = nlohmann::json::array();
    for (const LoraSpec& spec : args.lora.specs) out["adapters"].push_back({{"path", spec.path}, {"scale", spec.scale}});
  }
  out["logits"] = nlohmann::json::array();
  for (size_t i = 0; i < tokens.size(); ++i) out["logits"].push_back(row_json(logits.data() + i * n_vocab, n_vocab));

  // The greedy continuation decodes as `owl run` and the server do; the prompt is in the cache.
  std::vector<int32_t> greedy;
  engine::Session session(**model, *tok, **ctx);
  session.assume_cached(tokens, adapters->get());
  if (args.n_greedy > 0) {
    auto stats = session.generate({.prompt = tokens,
                                   .params = {.sampling = {.temperature = 0.0f}, .max_tokens = args.n_greedy},
                                   .adapters = *adapters},
                                  [&](std::string_view, const sample::Sampled& s) {
                                    greedy.push_back(s.token);
                                    return true;
                                  });
    if (!stats) return fail(kCommand, stats.message());
  }
  out["greedy"] = greedy;
  out["greedy_text"] = tok->detokenize(greedy);
  auto file = core::AtomicFile::create(args.output);
  if (!file) return fail(kCommand, file.message());
  const std::string json_text = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (auto s = file->write(json_text); !s) return fail(kCommand, s.message());
  if (auto s = file->commit(); !s) return fail(kCommand, s.message());
  return 0;
}

}  // namespace

Command register_logits(CLI::App& root) {
  auto args = std::make_shared<LogitsArgs>();
  CLI::App* app = root.add_subcommand("logits", "Write every prompt position's logits and the greedy continuation as JSON");
  app->add_option("-m,--model", args->model, "GGUF model file")->required();
  auto* p = app->add_option("-p,--prompt", args->prompt,
                            "Prompt text (special tokens are parsed); without -p or -f, read from piped standard input");
  auto* f = app->add_option("-f,--file", args->prompt_file, "Read the prompt from a file (-: standard input)");
  p->excludes(f);
  app->add_option("-n,--n-greedy", args->n_greedy, "Greedy tokens to generate (the prompt and these fit the context)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  add_ctx_option(app, args->n_ctx, "Context size (0: the model's training context)");
  app->add_flag("--no-bos", args->no_bos, "Do not add the BOS token");
  add_threads_option(app, args->n_threads);
  add_gpu_layers_option(app, args->n_gpu_layers);
  add_lora_options(app, args->lora);
  app->add_option("-o,--output", args->output, "Output JSON file")->required();
  return {app, [args, app] {
            args->prompt_given = app->count("--prompt") > 0;
            note_gpu_layers(app, kCommand);
            return run_logits(*args);
          }};
}

}  // namespace owl::cli
