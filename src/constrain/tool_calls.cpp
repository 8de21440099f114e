#include "constrain/tool_calls.h"

#include <set>

#include "constrain/json_schema.h"

namespace owl::constrain {

using core::make_error;
using Json = nlohmann::ordered_json;

namespace {

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::set<std::string> tool_names(const Json& tools) {
  std::set<std::string> names;
  for (const Json& t : tools) {
    if (t.contains("function") && t["function"].contains("name") && t["function"]["name"].is_string()) {
      names.insert(t["function"]["name"].get<std::string>());
    }
  }
  return names;
}

// A call object {"name": ..., "<args_key>": {...}} whose name is a tool's.
std::optional<ToolCall> as_call(const Json& j, const std::set<std::string>& names, const char* args_key) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  const std::string name = j["name"].get<std::string>();
  if (!names.count(name)) return std::nullopt;
  const Json* args = nullptr;
  for (const char* key : {args_key, "arguments", "parameters"}) {
    if (j.contains(key)) {
      args = &j[key];
      break;
    }
  }
  if (args == nullptr) return ToolCall{name, "{}"};
  if (args->is_string()) {  // some models write the arguments as a JSON string
    const Json inner = Json::parse(args->get<std::string>(), nullptr, false);
    if (!inner.is_object()) return std::nullopt;
    return ToolCall{name, inner.dump()};
  }
  if (!args->is_object()) return std::nullopt;
  return ToolCall{name, args->dump()};
}

// A JSON value at the start of `text`: its end, or npos.
size_t json_end(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') ++depth;
    else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
      if (depth < 0) return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

}  // namespace

const char* tool_syntax_name(ToolSyntax syntax) {
  switch (syntax) {
    case ToolSyntax::kHermes: return "hermes";
    case ToolSyntax::kLlama3: return "llama3";
    case ToolSyntax::kMistral: return "mistral";
  }
  return "unknown";
}

core::Result<ToolSyntax> tool_syntax(std::string_view src) {
  if (src.find("[TOOL_CALLS]") != std::string_view::npos) {
    if (src.find("[ARGS]") != std::string_view::npos) {
      return make_error("this chat template's tool calls ([TOOL_CALLS]name[ARGS]{{...}}) are not supported");
    }
    return ToolSyntax::kMistral;
  }
  if (src.find("<tool_call>") != std::string_view::npos) return ToolSyntax::kHermes;
  if (src.find("<|python_tag|>") != std::string_view::npos ||
      (src.find("ipython") != std::string_view::npos && src.find("parameters") != std::string_view::npos)) {
    return ToolSyntax::kLlama3;
  }
  // A template that renders tool calls in a syntax owl does not know: the calls could not be read.
  if (src.find("tool_call") != std::string_view::npos) {
    return make_error("this chat template's tool-call syntax is not one owl reads (hermes <tool_call>, llama3 JSON, "
                      "mistral [TOOL_CALLS])");
  }
  return ToolSyntax::kHermes;
}

core::Result<ForcedCall> forced_call(ToolSyntax syntax, const Json& tools, const std::string& only, bool parallel) {
  const char* args_key = syntax == ToolSyntax::kLlama3 ? "parameters" : "arguments";
  Json any_of = Json::array();
  for (const Json& t : tools) {
    const Json& f = t["function"];
    const std::string name = f["name"].get<std::string>();
    if (!only.empty() && name != only) continue;
    Json params = f.contains("parameters") && !f["parameters"].is_null() ? f["parameters"] : Json{{"type", "object"}};
    any_of.push_back({{"type", "object"},
                      {"properties", {{"name", {{"const", name}}}, {args_key, params}}},
                      {"required", {"name", args_key}}});
  }
  if (any_of.empty()) return make_error("tool_choice names '{}', which is not among the tools", only);
  Json schema = any_of.size() == 1 ? any_of[0] : Json{{"anyOf", any_of}};
  // $refs inside parameters point into the parameters: lift their $defs to the root.
  Json defs = Json::object();
  for (const Json& t : tools) {
    const Json& f = t["function"];
    if (!f.contains("parameters") || !f["parameters"].is_object()) continue;
    for (const char* key : {"$defs", "definitions"}) {
      if (f["parameters"].contains(key) && f["parameters"][key].is_object()) {
        for (const auto& [k, v] : f["parameters"][key].items()) defs[k] = v;
      }
    }
  }
  if (!defs.empty()) {
    schema["$defs"] = defs;
    schema["definitions"] = defs;
  }
  auto call = json_schema_to_gbnf(schema);
  if (!call) return call.error();
  std::string rules = *call;
  rules.replace(0, std::string("root ::= ").size(), "call ::= ");
  ForcedCall out;
  switch (syntax) {
    case ToolSyntax::kHermes:
      out.prefix = "<tool_call>\n";
      out.gbnf = std::string("root ::= call \"\\n</tool_call>\"") +
                 (parallel ? " ( \"\\n<tool_call>\\n\" call \"\\n</tool_call>\" )*" : "") + "\n";
      break;
    case ToolSyntax::kLlama3:
      out.gbnf = "root ::= call\n";  // Llama 3 writes one call per turn
      break;
    case ToolSyntax::kMistral:
      out.prefix = "[TOOL_CALLS]";
      out.gbnf = std::string("root ::= \"[\" call") + (parallel ? " ( \",\" \" \"? call )*" : "") + " \"]\"\n";
      break;
  }
  out.gbnf += rules;  // json_schema_to_gbnf parsed the call's rules; the provider compiles the whole
  return out;
}

ParsedOutput parse_tool_calls(ToolSyntax syntax, std::string_view output, const Json& tools) {
  const std::set<std::string> names = tool_names(tools);
  ParsedOutput out;
  switch (syntax) {
    case ToolSyntax::kHermes: {
      std::string content;
      size_t at = 0;
      for (;;) {
        const size_t open = output.find("<tool_call>", at);
        if (open == std::string_view::npos) break;
        const size_t body = open + std::string_view("<tool_call>").size();
        const size_t close = output.find("</tool_call>", body);
        const std::string_view inner = trim(output.substr(body, close == std::string_view::npos ? std::string_view::npos : close - body));
        const Json j = Json::parse(inner, nullptr, false);
        auto call = j.is_discarded() ? std::nullopt : as_call(j, names, "arguments");
        if (!call) break;
        content += output.substr(at, open - at);
        out.calls.push_back(std::move(*call));
        at = close == std::string_view::npos ? output.size() : close + std::string_view("</tool_call>").size();
      }
      content += output.substr(at);
      out.content = std::string(trim(content));
      break;
    }
    case ToolSyntax::kLlama3: {
      std::string_view text = trim(output);
      if (text.rfind("<|python_tag|>", 0) == 0) text = trim(text.substr(std::string_view("<|python_tag|>").size()));
      const Json j = Json::parse(text, nullptr, false);
      if (auto call = j.is_discarded() ? std::nullopt : as_call(j, names, "parameters")) {
        out.calls.push_back(std::move(*call));
      } else {
        out.content = std::string(trim(output));
      }
      break;
    }
    case ToolSyntax::kMistral: {
      std::string_view text = trim(output);
      if (text.rfind("[TOOL_CALLS]", 0) == 0) text = trim(text.substr(std::string_view("[TOOL_CALLS]").size()));
      const size_t end = text.empty() || text[0] != '[' ? std::string_view::npos : json_end(text);
      const Json j = end == std::string_view::npos ? Json() : Json::parse(text.substr(0, end), nullptr, false);
      std::vector<ToolCall> calls;
      if (j.is_array() && !j.empty()) {
        for (const Json& c : j) {
          auto call = as_call(c, names, "arguments");
          if (!call) {
            calls.clear();
            break;
          }
          calls.push_back(std::move(*call));
        }
      }
      if (calls.empty()) {
        out.content = std::string(trim(output));
      } else {
        out.calls = std::move(calls);
        out.content = std::string(trim(text.substr(end)));
      }
      break;
    }
  }
  return out;
}

}  // namespace owl::constrain
