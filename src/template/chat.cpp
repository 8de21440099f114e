#include "template/chat.h"

#include <utility>

namespace owl::tmpl {

namespace {

// Canonical templates, as published with the models' tokenizer_config.json.
const std::pair<std::string, std::string> kFormats[] = {
    {"chatml",  // OpenAI ChatML as used by Qwen, Yi, OpenHermes
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
     "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"},
    {"llama2",  // meta-llama/Llama-2-7b-chat-hf
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
     "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
     "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
     "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
     "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
     "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"},
    {"llama3",  // meta-llama/Meta-Llama-3-8B-Instruct
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
     "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' "
     "%}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if "
     "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"},
    {"mistral",  // mistralai/Mistral-7B-Instruct-v0.1
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
     "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
     "are supported!') }}{% endif %}{% endfor %}"},
    {"gemma",  // google/gemma-2-2b-it
     "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% "
     "endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif "
     "%}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if "
     "add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"},
    {"phi3",  // microsoft/Phi-3.5-mini-instruct
     "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + "
     "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + "
     "'<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + "
     "'<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ "
     "eos_token }}{% endif %}"},
};

}  // namespace

Result<std::string> render_chat(const Template& chat_template, const nlohmann::ordered_json& messages,
                                const ChatOptions& options) {
  if (!messages.is_array()) return core::Error{"chat: messages must be a JSON array"};
  if (!options.extra_context.is_object()) return core::Error{"chat: extra context must be a JSON object"};
  nlohmann::ordered_json context = {
      {"messages", messages},
      {"tools", options.tools},
      {"documents", nullptr},
      {"add_generation_prompt", options.add_generation_prompt},
      {"bos_token", options.bos_token},
      {"eos_token", options.eos_token},
  };
  for (const auto& [key, value] : options.extra_context.items()) context[key] = value;
  return chat_template.render(context, options.render);
}

Result<std::string> render_chat(std::string_view template_source, const nlohmann::ordered_json& messages,
                                const ChatOptions& options) {
  auto parsed = Template::parse(template_source);
  if (!parsed) return parsed.error();
  return render_chat(*parsed, messages, options);
}

const std::string* builtin_format(std::string_view name) {
  for (const auto& [format_name, source] : kFormats) {
    if (format_name == name) return &source;
  }
  return nullptr;
}

std::vector<std::string> builtin_format_names() {
  std::vector<std::string> names;
  for (const auto& format : kFormats) names.push_back(format.first);
  return names;
}

nlohmann::ordered_json fold_system_message(const nlohmann::ordered_json& messages) {
  if (!messages.is_array() || messages.empty() || messages[0].value("role", "") != "system") return messages;
  const std::string system = messages[0].value("content", "");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  bool folded = false;
  for (size_t i = 1; i < messages.size(); ++i) {
    nlohmann::ordered_json m = messages[i];
    if (!folded && m.value("role", "") == "user" && m["content"].is_string()) {
      m["content"] = system + "\n\n" + m["content"].get<std::string>();
      folded = true;
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace owl::tmpl
