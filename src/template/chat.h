// Chat prompts: renders a model's chat template over OpenAI-style messages with the variables
// Hugging Face's apply_chat_template passes (messages, add_generation_prompt, bos_token,
// eos_token, tools, documents), plus built-in formats for models that ship no template.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "template/template.h"

namespace owl::tmpl {

struct ChatOptions {
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  // Tool schemas (a JSON array); null renders `tools` as None, as Hugging Face does.
  nlohmann::ordered_json tools = nullptr;
  // More template variables (e.g. {"enable_thinking": false}); they override the ones above.
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
  RenderOptions render;
};

// `messages` must be a JSON array of message objects.
Result<std::string> render_chat(const Template& chat_template, const nlohmann::ordered_json& messages,
                                const ChatOptions& options = {});
Result<std::string> render_chat(std::string_view template_source, const nlohmann::ordered_json& messages,
                                const ChatOptions& options = {});

// The messages with a leading system message folded into the first user message ("SYSTEM\n\nUSER"),
// for templates that reject a system role (Gemma's, Mistral's), as Ollama and those models'
// official templates do it. Unchanged when the first message is not a system message.
nlohmann::ordered_json fold_system_message(const nlohmann::ordered_json& messages);

// The Jinja source of a built-in format (chatml, llama2, llama3, mistral, gemma, phi3), each the
// canonical template of its model family; nullptr for an unknown name.
const std::string* builtin_format(std::string_view name);
std::vector<std::string> builtin_format_names();

}  // namespace owl::tmpl
