// owl logits: the logits of every prompt position and the greedy continuation, in the format of
// llama.cpp's reference dumps (../shared/reference), so the two can be compared directly.
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/files.h"
#include "engine/session.h"
#include "model/forward.h"
#include "tokenizer/tokenizer.h"

namespace owl::cli {
namespace {

struct LogitsArgs {
  std::string model;
  std::string prompt;
  std::string output;
  int n_greedy = 32;
  bool no_bos = false;
  int n_threads = 2;
};

// Six significant digits, as the reference dumps print them.
nlohmann::json row_json(const float* x, int64_t n) {
  nlohmann::json row = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) row.push_back(std::stod(fmt::format("{:.6g}", x[i])));
  return row;
}

int run_logits(const LogitsArgs& args) {
  auto model = model::load_model(args.model);
  if (!model) return fmt::print(stderr, "owl logits: {}\n", model.message()), 1;
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fmt::print(stderr, "owl logits: {}\n", tok.message()), 1;
  const std::vector<int32_t> tokens = tok->tokenize(args.prompt, {.add_special = !args.no_bos, .parse_special = true});
  if (tokens.empty()) return fmt::print(stderr, "owl logits: the prompt gives no tokens\n"), 1;
  const int64_t n_vocab = (*model)->config.n_vocab;
  const auto n_ctx = static_cast<int64_t>(tokens.size()) + args.n_greedy + 1;
  auto ctx = model::make_context(**model, {.n_ctx = n_ctx, .n_seq = 1, .n_threads = args.n_threads});
  if (!ctx) return fmt::print(stderr, "owl logits: {}\n", ctx.message()), 1;

  model::Batch batch;
  for (size_t i = 0; i < tokens.size(); ++i) batch.add(tokens[i], static_cast<int32_t>(i), 0, true);
  std::vector<float> logits(tokens.size() * static_cast<size_t>(n_vocab));
  if (auto s = model::forward(**model, batch, **ctx, logits.data()); !s) {
    return fmt::print(stderr, "owl logits: {}\n", s.message()), 1;
  }
  nlohmann::json out;
  out["model"] = args.model;
  out["prompt"] = args.prompt;
  out["add_bos"] = !args.no_bos;
  out["n_vocab"] = n_vocab;
  out["tokens"] = tokens;
  out["logits"] = nlohmann::json::array();
  for (size_t i = 0; i < tokens.size(); ++i) out["logits"].push_back(row_json(logits.data() + i * n_vocab, n_vocab));

  // The greedy continuation decodes as `owl run` and the server do; the prompt is in the cache.
  std::vector<int32_t> greedy;
  engine::Session session(**model, *tok, **ctx);
  session.assume_cached(tokens);
  if (args.n_greedy > 0) {
    auto stats = session.generate({.prompt = tokens, .params = {.sampling = {.temperature = 0.0f}, .max_tokens = args.n_greedy}},
                                  [&](std::string_view, const sample::Sampled& s) {
                                    greedy.push_back(s.token);
                                    return true;
                                  });
    if (!stats) return fmt::print(stderr, "owl logits: {}\n", stats.message()), 1;
  }
  out["greedy"] = greedy;
  out["greedy_text"] = tok->detokenize(greedy);
  auto file = core::AtomicFile::create(args.output);
  if (!file) return fmt::print(stderr, "owl logits: {}\n", file.message()), 1;
  const std::string text = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (auto s = file->write(text); !s) return fmt::print(stderr, "owl logits: {}\n", s.message()), 1;
  if (auto s = file->commit(); !s) return fmt::print(stderr, "owl logits: {}\n", s.message()), 1;
  return 0;
}

}  // namespace

Command register_logits(CLI::App& root) {
  auto args = std::make_shared<LogitsArgs>();
  CLI::App* app = root.add_subcommand("logits", "Write every prompt position's logits and the greedy continuation as JSON");
  app->add_option("-m,--model", args->model, "GGUF model file")->required();
  app->add_option("-p,--prompt", args->prompt, "Prompt text (special tokens are parsed)")->required();
  app->add_option("-n,--n-greedy", args->n_greedy, "Greedy tokens to generate")->capture_default_str();
  app->add_flag("--no-bos", args->no_bos, "Do not add the BOS token");
  app->add_option("-t,--threads", args->n_threads, "Threads")->capture_default_str();
  app->add_option("-o,--output", args->output, "Output JSON file")->required();
  return {app, [args] { return run_logits(*args); }};
}

}  // namespace owl::cli
