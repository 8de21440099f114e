// owl chat: an interactive conversation in the terminal, through the model's chat template.
// Earlier turns stay in the KV cache: each turn renders the whole conversation and only the
// tokens after the common prefix are computed.
#include <csignal>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "chat_template.h"
#include "commands.h"
#include "engine/session.h"
#include "sampling_options.h"

namespace owl::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_sigint(int) { g_interrupted = 1; }

struct ChatArgs {
  std::string model;
  std::string system;
  std::string format = "chatml";
  std::string template_file;
  SamplingArgs sampling;
  int n_threads = 0;
  int64_t n_ctx = 0;
};

// Reads one user message: a line, or lines joined while they end in '\', or a block between
// lines of `"""`. Returns false at end of input or on Ctrl-C.
bool read_message(std::string& out) {
  out.clear();
  std::string line;
  bool block = false;
  fmt::print("> ");
  std::fflush(stdout);
  while (std::getline(std::cin, line)) {
    if (g_interrupted) return false;
    if (line == "\"\"\"") {
      if (block) return true;
      block = true;
      continue;
    }
    if (block) {
      out += line + "\n";
      continue;
    }
    if (!line.empty() && line.back() == '\\') {
      out += line.substr(0, line.size() - 1) + "\n";
      fmt::print(". ");
      std::fflush(stdout);
      continue;
    }
    out += line;
    return true;
  }
  return false;
}

int run_chat(ChatArgs& args) {
  if (auto s = finish_sampling_args(args.sampling); !s) return fmt::print(stderr, "owl chat: {}\n", s.message()), 1;
  auto model = model::load_model(args.model);
  if (!model) return fmt::print(stderr, "owl chat: {}\n", model.message()), 1;
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fmt::print(stderr, "owl chat: {}\n", tok.message()), 1;
  auto source = choose_chat_template(args.template_file, args.format, (*model)->file, "owl chat");
  if (!source) return fmt::print(stderr, "owl chat: {}\n", source.message()), 1;
  auto chat_template = tmpl::Template::parse(*source);
  if (!chat_template) return fmt::print(stderr, "owl chat: {}\n", chat_template.message()), 1;
  auto ctx = model::make_context(**model, {.n_ctx = args.n_ctx, .n_seq = 1, .n_threads = args.n_threads});
  if (!ctx) return fmt::print(stderr, "owl chat: {}\n", ctx.message()), 1;

  tmpl::ChatOptions chat_options;
  chat_options.add_generation_prompt = true;
  chat_options.bos_token = std::string(tok->token_to_piece(tok->bos(), true));
  chat_options.eos_token = std::string(tok->token_to_piece(tok->eos(), true));
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!args.system.empty()) messages.push_back({{"role", "system"}, {"content", args.system}});
  const nlohmann::ordered_json initial = messages;
  engine::Session session(**model, *tok, **ctx);
  std::signal(SIGINT, on_sigint);
  fmt::print(stderr, "owl chat: /reset starts over, /exit quits, Ctrl-C stops a reply; end a line with \\ "
                     "or wrap text in \"\"\" for several lines\n");
  std::string input;
  while (read_message(input)) {
    if (input == "/exit") break;
    if (input == "/reset") {
      messages = initial;
      fmt::print("(conversation cleared)\n");
      continue;
    }
    if (input.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", input}});
    auto prompt_text = tmpl::render_chat(*chat_template, messages, chat_options);
    if (!prompt_text) {
      fmt::print(stderr, "owl chat: {}\n", prompt_text.message());
      messages.erase(messages.end() - 1);
      continue;
    }
    const bool has_bos = !chat_options.bos_token.empty() && prompt_text->rfind(chat_options.bos_token, 0) == 0;
    const std::vector<int32_t> prompt = tok->tokenize(*prompt_text, {.add_special = !has_bos, .parse_special = true});
    std::string reply;
    g_interrupted = 0;
    auto stats = session.generate({.prompt = prompt, .params = args.sampling.generate},
                                  [&](std::string_view text, const sample::Sampled&) {
                                    reply.append(text);
                                    std::fwrite(text.data(), 1, text.size(), stdout);
                                    std::fflush(stdout);
                                    return g_interrupted == 0;
                                  });
    fmt::print("\n");
    if (!stats) {
      fmt::print(stderr, "owl chat: {}\n", stats.message());
      messages.erase(messages.end() - 1);
      continue;
    }
    g_interrupted = 0;
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  fmt::print("\n");
  return 0;
}

}  // namespace

Command register_chat(CLI::App& root) {
  auto args = std::make_shared<ChatArgs>();
  CLI::App* app = root.add_subcommand("chat", "Chat with a model in the terminal, through its chat template");
  app->add_option("-m,--model", args->model, "GGUF model file")->required();
  app->add_option("--system", args->system, "System prompt");
  app->add_option("--format", args->format, "Built-in chat format for models without a template")->capture_default_str();
  app->add_option("--chat-template", args->template_file, "Jinja chat template file to use instead of the model's");
  app->add_option("-t,--threads", args->n_threads, "Threads (0: all cores)")->capture_default_str();
  app->add_option("-c,--ctx-size", args->n_ctx, "Context size (0: the model's, at most 4096)")->capture_default_str();
  add_sampling_options(app, args->sampling);
  args->sampling.generate.max_tokens = -1;
  return {app, [args] { return run_chat(*args); }};
}

}  // namespace owl::cli
