// Tool calls as a model family writes them: which syntax a chat template teaches, the grammar
// that makes a model call a tool (tool_choice "required" or a named function), and the parser
// that turns a model's output back into calls.
//
//   hermes   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>   Qwen 2.5/3, Hermes,
//            and owl's default for templates that say nothing about tools (chatml)
//   llama3   {"name": "f", "parameters": {...}}                             Llama 3.1-3.3
//   mistral  [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]          Mistral Nemo / v3
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace owl::constrain {

enum class ToolSyntax { kHermes, kLlama3, kMistral };

const char* tool_syntax_name(ToolSyntax syntax);

// The syntax a chat template's source teaches its model; an error for templates whose syntax
// owl does not parse (so that tools are refused rather than answered as text).
core::Result<ToolSyntax> tool_syntax(std::string_view template_source);

// What makes the model call: text appended to the rendered prompt (the start of a call, so a
// marker that is a control token needs no sampling) and the grammar of the rest.
struct ForcedCall {
  std::string prefix;
  std::string gbnf;
};

// `tools`: the request's tools array (OpenAI's shape, already validated). `only`: a function
// name (tool_choice naming one) or "" for any of them. `parallel`: one or more calls, else one.
core::Result<ForcedCall> forced_call(ToolSyntax syntax, const nlohmann::ordered_json& tools, const std::string& only,
                                     bool parallel);

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object's text
};

struct ParsedOutput {
  std::string content;          // text outside the calls (trimmed)
  std::vector<ToolCall> calls;  // in order; empty when the output is plain text
};

// The calls in a model's output (after `prefix`, which the output continues), for functions
// named in `tools`; anything that does not parse as a call stays content.
ParsedOutput parse_tool_calls(ToolSyntax syntax, std::string_view output, const nlohmann::ordered_json& tools);

}  // namespace owl::constrain
