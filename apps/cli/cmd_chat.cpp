// owl chat: an interactive conversation in the terminal, through the model's chat template.
// Earlier turns stay in the KV cache: each turn renders the whole conversation and only the
// tokens after the common prefix are computed.
#include <csignal>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "chat_template.h"
#include "commands.h"
#include "common_options.h"
#include "engine/session.h"
#include "lora_options.h"
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
  int n_gpu_layers = -1;
  int64_t n_ctx = 0;
  LoraArgs lora;
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

constexpr const char* kCommand = "owl chat";
constexpr const char* kCommands = "/help lists these, /reset starts over, /exit quits; Ctrl-C stops a reply; end a line "
                                  "with \\ or wrap text in \"\"\" for several lines";

// What a chat keeps between turns.
struct Conversation {
  const tmpl::Template& chat_template;
  tmpl::ChatOptions options;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  size_t n_fixed = 0;        // leading messages every prompt keeps (the system prompt)
  bool fold_system = false;  // the template rejects a system role: --system goes in the first user message
};

core::Result<std::string> render(const Conversation& c) {
  return tmpl::render_chat(c.chat_template, c.fold_system ? tmpl::fold_system_message(c.messages) : c.messages, c.options);
}

// Whether the template takes a system message, or needs it folded into the first user message;
// an error when it takes neither.
core::Status choose_system_handling(Conversation& c) {
  if (c.n_fixed == 0) return {};
  nlohmann::ordered_json probe = c.messages;
  probe.push_back({{"role", "user"}, {"content", "Hi"}});
  auto plain = tmpl::render_chat(c.chat_template, probe, c.options);
  if (plain) return {};
  if (auto folded = tmpl::render_chat(c.chat_template, tmpl::fold_system_message(probe), c.options); !folded) {
    return core::make_error("--system: the chat template renders no system prompt: {}", plain.message());
  }
  c.fold_system = true;
  fmt::print(stderr, "{}: the chat template takes no system role; --system is put at the start of the first user message\n",
             kCommand);
  return {};
}

// The prompt of the conversation, leaving a quarter of the context (at most -n) for the reply:
// when it does not fit, the oldest turns after the system prompt are dropped, as llama.cpp's
// context shift does; an error (the conversation unchanged) when the last message alone does not fit.
core::Result<std::vector<int32_t>> fit_prompt(Conversation& conversation, const tokenizer::Tokenizer& tok,
                                              int64_t n_ctx, int64_t max_tokens) {
  const int64_t reserve = max_tokens > 0 ? std::min(max_tokens, n_ctx / 4) : n_ctx / 4;
  Conversation c = conversation;
  for (size_t dropped = 0;; ++dropped) {
    auto text = render(c);
    if (!text) return text.error();
    const bool has_bos = !c.options.bos_token.empty() && text->rfind(c.options.bos_token, 0) == 0;
    std::vector<int32_t> prompt = tok.tokenize(*text, {.add_special = !has_bos, .parse_special = true});
    if (static_cast<int64_t>(prompt.size()) + reserve <= n_ctx) {
      if (dropped > 0) fmt::print(stderr, "(context full: dropped the {} oldest messages)\n", dropped);
      conversation.messages = std::move(c.messages);
      return prompt;
    }
    if (c.messages.size() <= c.n_fixed + 1) {
      return core::make_error("context full: the message needs {} of the context's {} tokens ({} kept for the reply); "
                              "/reset, a shorter message, or a larger -c", prompt.size(), n_ctx, reserve);
    }
    c.messages.erase(c.messages.begin() + static_cast<std::ptrdiff_t>(c.n_fixed));
  }
}

enum class CommandResult { kNotCommand, kHandled, kExit };

CommandResult run_command(const std::string& input, Conversation& c) {
  if (input.empty() || input[0] != '/') return CommandResult::kNotCommand;
  if (input == "/exit" || input == "/bye") return CommandResult::kExit;
  if (input == "/reset" || input == "/clear") {
    c.messages.erase(c.messages.begin() + static_cast<std::ptrdiff_t>(c.n_fixed), c.messages.end());
    fmt::print("(conversation cleared)\n");
  } else if (input == "/help" || input == "/?") {
    fmt::print("{}\n", kCommands);
  } else {
    fmt::print("unknown command {}, try /help\n", input.substr(0, input.find(' ')));
  }
  return CommandResult::kHandled;
}

// One turn: the user's message in, the reply streamed out and kept; an error drops the message.
// The same adapters every turn: earlier turns' KV is reused only under the adapters it was computed with.
void run_turn(Conversation& c, engine::Session& session, const tokenizer::Tokenizer& tok, int64_t n_ctx,
              const engine::GenerateParams& params, const std::shared_ptr<const model::AdapterSet>& adapters,
              const std::string& input) {
  c.messages.push_back({{"role", "user"}, {"content", input}});
  auto prompt = fit_prompt(c, tok, n_ctx, params.max_tokens);
  if (!prompt) {
    fmt::print(stderr, "{}: {}\n", kCommand, prompt.message());
    c.messages.erase(c.messages.end() - 1);
    return;
  }
  std::string reply;
  g_interrupted = 0;
  engine::SequenceRequest request{.prompt = *prompt, .params = params, .adapters = adapters};
  auto stats = session.generate(std::move(request), [&](std::string_view text, const sample::Sampled&) {
    reply.append(text);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return g_interrupted == 0;
  });
  fmt::print("\n");
  g_interrupted = 0;
  if (!stats) {
    fmt::print(stderr, "{}: {}\n", kCommand, stats.message());
    c.messages.erase(c.messages.end() - 1);
    return;
  }
  c.messages.push_back({{"role", "assistant"}, {"content", reply}});
}

int run_chat(ChatArgs& args) {
  if (auto s = finish_sampling_args(args.sampling); !s) return fail(kCommand, s.message());
  if (auto s = finish_lora_args(args.lora); !s) return fail(kCommand, s.message());
  auto model = model::load_model(args.model);
  if (!model) return fail(kCommand, model.message());
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fail(kCommand, tok.message());
  auto adapters = load_adapters(args.lora.specs, **model);
  if (!adapters) return fail(kCommand, adapters.message());
  note_adapters(kCommand, args.lora.specs, adapters->get());
  if (auto s = attach_constraint(args.sampling, *tok); !s) return fail(kCommand, s.message());
  auto chat_template = load_chat_template(args.template_file, args.format, (*model)->file, kCommand);
  if (!chat_template) return fail(kCommand, chat_template.message());
  const int64_t n_ctx = context_size(**model, args.n_ctx, kCommand);
  auto ctx = model::make_context(**model, {.n_ctx = n_ctx, .n_seq = 1, .n_threads = args.n_threads});
  if (!ctx) return fail(kCommand, ctx.message());

  Conversation c{.chat_template = *chat_template};
  c.options.add_generation_prompt = true;
  c.options.bos_token = std::string(tok->token_to_piece(tok->bos(), true));
  c.options.eos_token = std::string(tok->token_to_piece(tok->eos(), true));
  if (!args.system.empty()) c.messages.push_back({{"role", "system"}, {"content", args.system}});
  c.n_fixed = c.messages.size();
  if (auto s = choose_system_handling(c); !s) return fail(kCommand, s.message());
  engine::Session session(**model, *tok, **ctx);
  std::signal(SIGINT, on_sigint);
  fmt::print(stderr, "{}: {}\n", kCommand, kCommands);
  std::string input;
  while (read_message(input)) {
    const CommandResult command = run_command(input, c);
    if (command == CommandResult::kExit) break;
    if (command == CommandResult::kHandled || input.empty()) continue;
    run_turn(c, session, *tok, (*ctx)->kv.n_ctx(), args.sampling.generate, *adapters, input);
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
  app->add_option("--format", args->format, "Built-in chat format for models without a template")
      ->check(CLI::IsMember(tmpl::builtin_format_names()))
      ->capture_default_str();
  app->add_option("--chat-template", args->template_file, "Jinja chat template file to use instead of the model's");
  add_threads_option(app, args->n_threads);
  add_ctx_option(app, args->n_ctx);
  add_gpu_layers_option(app, args->n_gpu_layers);
  add_lora_options(app, args->lora);
  add_sampling_options(app, args->sampling);
  args->sampling.generate.max_tokens = -1;
  return {app, [args, app] {
            note_gpu_layers(app, kCommand);
            return run_chat(*args);
          }};
}

}  // namespace owl::cli
