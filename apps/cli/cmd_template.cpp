// owl template (-m MODEL | --template FILE | --format NAME) --messages FILE.json
//              [--add-generation-prompt] [--bos TEXT] [--eos TEXT]:
// writes the chat prompt exactly as Hugging Face's apply_chat_template renders it, nothing added.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/files.h"
#include "gguf/gguf.h"
#include "gguf/keys.h"
#include "template/chat.h"

namespace owl::cli {

namespace keys = gguf::keys;

namespace {

struct TemplateCliOptions {
  std::string model;
  std::string template_file;
  std::string format;
  std::string messages_file;
  bool add_generation_prompt = false;
  std::string bos;
  std::string eos;
};

struct ModelChat {
  std::string chat_template;
  std::string bos;
  std::string eos;
};

// The text of token `id_key` (gguf::keys::kTokenizerBosId) or "" when the model has none.
core::Result<std::string> token_text(const gguf::GgufFile& file, const std::vector<std::string>& tokens,
                                     std::string_view id_key) {
  if (!file.find(id_key)) return std::string();
  auto id = file.get_int(id_key);
  if (!id) return id.error();
  if (*id < 0 || static_cast<uint64_t>(*id) >= tokens.size()) {
    return core::make_error("{}: {}: token id {} outside the vocabulary of {}", file.path(), id_key, *id, tokens.size());
  }
  return tokens[static_cast<size_t>(*id)];
}

core::Result<ModelChat> load_model_chat(const std::string& path) {
  auto file = gguf::GgufFile::open(path);
  if (!file) return file.error();
  ModelChat chat;
  auto source = file->get_string(keys::kTokenizerChatTemplate);
  if (!source) return core::make_error("{}: the model has no chat template (use --format)", path);
  chat.chat_template = std::move(*source);
  if (!file->find(keys::kTokenizerTokens)) return chat;
  auto tokens = file->get_string_array(keys::kTokenizerTokens);
  if (!tokens) return tokens.error();
  auto bos = token_text(*file, *tokens, keys::kTokenizerBosId);
  if (!bos) return bos.error();
  auto eos = token_text(*file, *tokens, keys::kTokenizerEosId);
  if (!eos) return eos.error();
  chat.bos = std::move(*bos);
  chat.eos = std::move(*eos);
  return chat;
}

// The messages file holds a JSON array of messages, or an object with "messages" and
// optionally "tools".
core::Status read_messages(const std::string& path, nlohmann::ordered_json& messages, nlohmann::ordered_json& tools) {
  auto text = core::read_file(path);
  if (!text) return text.error();
  auto parsed = nlohmann::ordered_json::parse(*text, nullptr, false);
  if (parsed.is_discarded()) return core::make_error("{}: not valid JSON", path);
  if (parsed.is_object() && parsed.contains("messages")) {
    messages = parsed["messages"];
    if (parsed.contains("tools")) tools = parsed["tools"];
  } else {
    messages = std::move(parsed);
  }
  if (!messages.is_array()) return core::make_error("{}: expected a JSON array of messages", path);
  return {};
}

int run_template(const TemplateCliOptions& options) {
  tmpl::ChatOptions chat;
  chat.add_generation_prompt = options.add_generation_prompt;
  std::string source;
  if (!options.model.empty()) {
    auto model = load_model_chat(options.model);
    if (!model) {
      fmt::print(stderr, "owl template: {}\n", model.message());
      return 1;
    }
    source = std::move(model->chat_template);
    chat.bos_token = std::move(model->bos);
    chat.eos_token = std::move(model->eos);
  } else if (!options.template_file.empty()) {
    auto text = core::read_file(options.template_file);
    if (!text) {
      fmt::print(stderr, "owl template: {}\n", text.message());
      return 1;
    }
    source = std::move(*text);
  } else {
    const std::string* builtin = tmpl::builtin_format(options.format);
    if (!builtin) {
      fmt::print(stderr, "owl template: unknown format '{}' (known: {})\n", options.format,
                 fmt::join(tmpl::builtin_format_names(), ", "));
      return 1;
    }
    source = *builtin;
  }
  if (!options.bos.empty()) chat.bos_token = options.bos;
  if (!options.eos.empty()) chat.eos_token = options.eos;
  nlohmann::ordered_json messages;
  if (auto status = read_messages(options.messages_file, messages, chat.tools); !status) {
    fmt::print(stderr, "owl template: {}\n", status.message());
    return 1;
  }
  auto prompt = tmpl::render_chat(source, messages, chat);
  if (!prompt) {
    fmt::print(stderr, "owl template: {}\n", prompt.message());
    return 1;
  }
  if (std::fwrite(prompt->data(), 1, prompt->size(), stdout) != prompt->size() || std::fflush(stdout) != 0) {
    fmt::print(stderr, "owl template: cannot write the prompt to stdout\n");
    return 1;
  }
  return 0;
}

}  // namespace

Command register_template(CLI::App& root) {
  auto options = std::make_shared<TemplateCliOptions>();
  CLI::App* app = root.add_subcommand("template", "Render a chat prompt with a model's chat template");
  auto* model = app->add_option("-m,--model", options->model, "GGUF model whose tokenizer.chat_template is used");
  auto* file = app->add_option("--template", options->template_file, "Jinja chat template file");
  auto* format = app->add_option("--format", options->format,
                                 "Built-in format: chatml, llama2, llama3, mistral, gemma, phi3");
  model->excludes(file)->excludes(format);
  file->excludes(format);
  app->add_option("--messages", options->messages_file, "JSON file: an array of {role, content} messages")
      ->required();
  app->add_flag("--add-generation-prompt", options->add_generation_prompt, "End with the assistant turn's header");
  app->add_option("--bos", options->bos, "BOS token text (default: the model's)");
  app->add_option("--eos", options->eos, "EOS token text (default: the model's)");
  return {app, [options, app] {
            if (options->model.empty() && options->template_file.empty() && options->format.empty()) {
              fmt::print(stderr, "owl template: one of -m, --template or --format is required\n{}", app->help());
              return 1;
            }
            return run_template(*options);
          }};
}

}  // namespace owl::cli
