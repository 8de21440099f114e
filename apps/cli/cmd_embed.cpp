// owl embed: the embedding of each input (a -p text, or each line of a file), pooled and
// L2-normalized as llama.cpp's llama-embedding computes them.
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common_options.h"
#include "core/files.h"
#include "engine/embed.h"
#include "tokenizer/tokenizer.h"

namespace owl::cli {
namespace {

struct EmbedArgs {
  std::string model;
  std::vector<std::string> prompts;
  std::string file;
  std::string pooling;  // empty: the model's
  bool no_normalize = false;
  bool json = false;
  int64_t n_ctx = 0;
  int n_threads = 0;
};

// The inputs: every -p, then each non-empty line of --file ("-": standard input).
core::Result<std::vector<std::string>> inputs(const EmbedArgs& args) {
  std::vector<std::string> out = args.prompts;
  if (!args.file.empty()) {
    auto read = core::read_input(args.file);
    if (!read) return read.error();
    const std::string text = std::move(*read);
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) out.push_back(line);
    }
  }
  if (out.empty()) return core::make_error("no input: give -p TEXT or -f FILE (one input per line)");
  return out;
}

void print(const std::vector<std::vector<float>>& vectors, const std::vector<int64_t>& n_tokens, bool json) {
  if (!json) {
    for (const auto& v : vectors) {
      std::string line;
      for (float x : v) line += fmt::format("{}{:.7f}", line.empty() ? "" : " ", x);
      fmt::print("{}\n", line);
    }
    return;
  }
  nlohmann::json data = nlohmann::json::array();
  int64_t total = 0;
  for (size_t i = 0; i < vectors.size(); ++i) {
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vectors[i]}});
    total += n_tokens[i];
  }
  const nlohmann::json out = {{"object", "list"}, {"data", std::move(data)},
                              {"usage", {{"prompt_tokens", total}, {"total_tokens", total}}}};
  fmt::print("{}\n", out.dump());
}

int run_embed(const EmbedArgs& args) {
  auto texts = inputs(args);
  if (!texts) return fmt::print(stderr, "owl embed: {}\n", texts.message()), 1;
  engine::EmbedderOptions options{.n_ctx = args.n_ctx, .n_threads = args.n_threads, .normalize = !args.no_normalize};
  if (!args.pooling.empty()) {
    auto pooling = engine::parse_pooling(args.pooling);
    if (!pooling) return fmt::print(stderr, "owl embed: --pooling: {}\n", pooling.message()), 1;
    options.pooling = *pooling;
  }
  auto model = model::load_model(args.model);
  if (!model) return fmt::print(stderr, "owl embed: {}\n", model.message()), 1;
  if (args.pooling.empty()) options.pooling = engine::model_pooling(**model);
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fmt::print(stderr, "owl embed: {}\n", tok.message()), 1;
  auto embedder = engine::Embedder::make(**model, options);
  if (!embedder) return fmt::print(stderr, "owl embed: {}\n", embedder.message()), 1;
  std::vector<std::vector<int32_t>> ids;
  std::vector<int64_t> n_tokens;
  for (size_t i = 0; i < texts->size(); ++i) {
    ids.push_back(tok->tokenize((*texts)[i], {.add_special = true}));
    n_tokens.push_back(static_cast<int64_t>(ids.back().size()));
    if (ids.back().empty() || n_tokens.back() > (*embedder)->n_ctx()) {
      return fmt::print(stderr, "owl embed: input {}: {} tokens, not within 1..{} (-c)\n", i + 1, n_tokens.back(),
                        (*embedder)->n_ctx()), 1;
    }
  }
  auto vectors = (*embedder)->embed(std::span<const std::vector<int32_t>>(ids));
  if (!vectors) return fmt::print(stderr, "owl embed: {}\n", vectors.message()), 1;
  print(*vectors, n_tokens, args.json);
  return 0;
}

}  // namespace

Command register_embed(CLI::App& root) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* app = root.add_subcommand("embed", "Print the embedding of each input, pooled and L2-normalized");
  app->add_option("-m,--model", args->model, "GGUF model file")->required();
  app->add_option("-p,--prompt", args->prompts, "Text to embed (repeatable)");
  app->add_option("-f,--file", args->file, "Embed each line of this file ('-': standard input)");
  app->add_option("--pooling", args->pooling, "mean, last or cls (default: the model's, else mean)");
  app->add_flag("--no-normalize", args->no_normalize, "Print the pooled vectors without L2 normalization");
  app->add_flag("--json", args->json, "Print OpenAI's embeddings response shape");
  add_ctx_option(app, args->n_ctx, "Longest input in tokens (0: the model's context, at most 4096)");
  add_threads_option(app, args->n_threads);
  return {app, [args] { return run_embed(*args); }};
}

}  // namespace owl::cli
