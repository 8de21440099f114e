#include "serve/api.h"

#include <cmath>
#include <limits>
#include <random>
#include <set>

#include <fmt/format.h>

#include "constrain/grammar.h"
#include "constrain/json_schema.h"

namespace owl::serve {
namespace {

std::string type_name(const Json& v) { return v.type_name(); }

ApiError bad(std::string_view param, std::string message) {
  return ApiError{.status = 400, .message = std::move(message), .param = std::string(param)};
}

// Reads optional fields of the request object; the first problem is kept in `error`.
class Fields {
 public:
  explicit Fields(const Json& body) : body_(body) {}
  std::optional<ApiError> error;

  const Json* get(std::string_view key) {
    auto it = body_.find(key);
    if (it == body_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  void number(std::string_view key, double lo, double hi, float& out) {
    double v = out;
    if (number(key, lo, hi, v)) out = static_cast<float>(v);
  }
  bool number(std::string_view key, double lo, double hi, double& out) {
    const Json* v = get(key);
    if (!v || error) return false;
    if (!v->is_number()) return fail(key, fmt::format("'{}' must be a number, got {}", key, type_name(*v)));
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) return fail(key, fmt::format("'{}' is {}, outside [{}, {}]", key, d, lo, hi));
    out = d;
    return true;
  }
  template <typename T>
  bool integer(std::string_view key, int64_t lo, int64_t hi, T& out) {
    const Json* v = get(key);
    if (!v || error) return false;
    if (!v->is_number_integer()) {
      if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() && std::abs(v->get<double>()) < 1e15) {
        // 5.0 is accepted as 5, as OpenAI does.
      } else {
        return fail(key, fmt::format("'{}' must be an integer, got {}", key, v->dump()));
      }
    }
    const auto i = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                       ? std::numeric_limits<int64_t>::max()
                       : (v->is_number_float() ? static_cast<int64_t>(v->get<double>()) : v->get<int64_t>());
    if (i < lo || i > hi) return fail(key, fmt::format("'{}' is {}, outside [{}, {}]", key, i, lo, hi));
    out = static_cast<T>(i);
    return true;
  }
  bool boolean(std::string_view key, bool& out) {
    const Json* v = get(key);
    if (!v || error) return false;
    if (!v->is_boolean()) return fail(key, fmt::format("'{}' must be a boolean, got {}", key, type_name(*v)));
    out = v->get<bool>();
    return true;
  }
  bool string(std::string_view key, std::string& out) {
    const Json* v = get(key);
    if (!v || error) return false;
    if (!v->is_string()) return fail(key, fmt::format("'{}' must be a string, got {}", key, type_name(*v)));
    out = v->get<std::string>();
    return true;
  }
  bool fail(std::string_view key, std::string message) {
    if (!error) error = bad(key, std::move(message));
    return false;
  }

 private:
  const Json& body_;
};

// Message content: a string, or an array of {"type": "text", "text": ...} parts, joined.
std::optional<ApiError> flatten_content(Json& message, size_t i) {
  const std::string param = fmt::format("messages[{}].content", i);
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) {
    message["content"] = "";
    return std::nullopt;
  }
  if (it->is_string()) return std::nullopt;
  if (!it->is_array()) return bad(param, fmt::format("'{}' must be a string or an array of parts, got {}", param, it->type_name()));
  std::string text;
  for (size_t p = 0; p < it->size(); ++p) {
    const Json& part = (*it)[p];
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      return bad(param, fmt::format("'{}[{}]' must be an object with a string 'type'", param, p));
    }
    const std::string type = part["type"].get<std::string>();
    if (type != "text") return bad(param, fmt::format("'{}[{}]': content parts of type '{}' are unsupported", param, p, type));
    if (!part.contains("text") || !part["text"].is_string()) {
      return bad(param, fmt::format("'{}[{}].text' must be a string", param, p));
    }
    text += part["text"].get<std::string>();
  }
  *it = text;
  return std::nullopt;
}

// An assistant message's tool_calls, with each call's arguments (a JSON string in OpenAI's
// shape) turned into the object chat templates render.
std::optional<ApiError> parse_tool_calls_message(Json& m, const std::string& param) {
  auto it = m.find("tool_calls");
  if (it == m.end() || it->is_null()) return std::nullopt;
  const std::string p = param + ".tool_calls";
  if (m["role"] != "assistant") return bad(p, fmt::format("'{}' is only for assistant messages", p));
  if (!it->is_array()) return bad(p, fmt::format("'{}' must be an array", p));
  for (size_t k = 0; k < it->size(); ++k) {
    Json& call = (*it)[k];
    const std::string cp = fmt::format("{}[{}]", p, k);
    if (!call.is_object() || !call.contains("function") || !call["function"].is_object() ||
        !call["function"].contains("name") || !call["function"]["name"].is_string()) {
      return bad(cp, fmt::format("'{}' must be {{\"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}", cp));
    }
    Json& args = call["function"]["arguments"];
    if (args.is_string()) {
      Json parsed = Json::parse(args.get<std::string>(), nullptr, false);
      if (!parsed.is_object()) return bad(cp + ".function.arguments", fmt::format("'{}.function.arguments' is not a JSON object's text", cp));
      args = std::move(parsed);
    } else if (args.is_null()) {
      args = Json::object();
    } else if (!args.is_object()) {
      return bad(cp + ".function.arguments", fmt::format("'{}.function.arguments' must be a string of JSON", cp));
    }
  }
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const Json& body, CompletionRequest& req) {
  auto it = body.find("messages");
  if (it == body.end()) return bad("messages", "'messages' is required");
  if (!it->is_array()) return bad("messages", fmt::format("'messages' must be an array, got {}", it->type_name()));
  if (it->empty()) return bad("messages", "'messages' must not be empty");
  req.messages = *it;
  for (size_t i = 0; i < req.messages.size(); ++i) {
    Json& m = req.messages[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object()) return bad(param, fmt::format("'{}' must be an object, got {}", param, m.type_name()));
    if (!m.contains("role") || !m["role"].is_string()) return bad(param + ".role", fmt::format("'{}.role' must be a string", param));
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool") {
      return bad(param + ".role", fmt::format("'{}.role' is '{}', not one of system, developer, user, assistant, tool", param, role));
    }
    if (role == "developer") m["role"] = "system";
    if (auto e = flatten_content(m, i)) return e;
    if (auto e = parse_tool_calls_message(m, param)) return e;
  }
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const Json& body, CompletionRequest& req, int64_t n_vocab) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return bad("prompt", "'prompt' is required");
  const Json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    req.prompt_text = p->get<std::string>();
    return std::nullopt;
  }
  if (p->is_array() && !p->empty()) {
    for (const Json& t : *p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab) {
        return bad("prompt", fmt::format("'prompt' token {} is not a token id in [0, {})", t.dump(), n_vocab));
      }
      req.prompt_tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    return std::nullopt;
  }
  return bad("prompt", fmt::format("'prompt' must be a string, an array of one string, or an array of token ids; got {}",
                                   p->dump().substr(0, 64)));
}

std::optional<ApiError> parse_stop(const Json& body, CompletionRequest& req) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    req.stop.push_back(it->get<std::string>());
    return std::nullopt;
  }
  if (!it->is_array() || it->size() > 4) return bad("stop", "'stop' must be a string or an array of at most 4 strings");
  for (const Json& s : *it) {
    if (!s.is_string()) return bad("stop", fmt::format("'stop' entries must be strings, got {}", s.type_name()));
    req.stop.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> parse_logit_bias(const Json& body, CompletionRequest& req, int64_t n_vocab) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) return bad("logit_bias", fmt::format("'logit_bias' must be an object, got {}", it->type_name()));
  for (const auto& [key, value] : it->items()) {
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(key, &used);
      if (used != key.size()) id = -1;
    } catch (const std::exception&) {
      id = -1;
    }
    if (id < 0 || id >= n_vocab) return bad("logit_bias", fmt::format("'logit_bias' key '{}' is not a token id in [0, {})", key, n_vocab));
    if (!value.is_number() || value.get<double>() < -100 || value.get<double>() > 100) {
      return bad("logit_bias", fmt::format("'logit_bias' value for {} is {}, not a number in [-100, 100]", key, value.dump()));
    }
    req.sampling.logit_bias.emplace_back(static_cast<int32_t>(id), value.get<float>());
  }
  return std::nullopt;
}

// response_format (OpenAI's), json_schema and grammar (llama.cpp's): at most one, as GBNF.
std::optional<ApiError> parse_constraint(const Json& body, CompletionRequest& req) {
  std::string given;
  auto one = [&](const char* key) -> std::optional<ApiError> {
    if (!given.empty()) return bad(key, fmt::format("'{}' and '{}' both constrain the output; send one", given, key));
    given = key;
    return std::nullopt;
  };
  auto from_schema = [&](const Json& schema, const std::string& param) -> std::optional<ApiError> {
    if (!schema.is_object() && !schema.is_boolean()) return bad(param, fmt::format("'{}' must be a JSON Schema object", param));
    auto gbnf = constrain::json_schema_to_gbnf(schema);
    if (!gbnf) return bad(param, fmt::format("'{}': {}", param, gbnf.message()));
    req.grammar = std::move(*gbnf);
    req.schema = schema;
    req.json_output = true;
    return std::nullopt;
  };
  if (auto rf = body.find("response_format"); rf != body.end() && !rf->is_null()) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string()) {
      return bad("response_format", "'response_format' must be an object with a 'type' (text, json_object or json_schema)");
    }
    const std::string type = (*rf)["type"].get<std::string>();
    if (type == "json_object") {
      if (auto e = one("response_format")) return e;
      req.grammar = constrain::json_object_gbnf();
      req.json_output = true;
    } else if (type == "json_schema") {
      if (auto e = one("response_format")) return e;
      auto js = rf->find("json_schema");
      if (js == rf->end() || !js->is_object()) {
        return bad("response_format.json_schema", "'response_format' of type 'json_schema' needs a 'json_schema' object with a 'schema'");
      }
      if (auto st = js->find("strict"); st != js->end() && !st->is_null() && !st->is_boolean()) {
        return bad("response_format.json_schema.strict", "'strict' must be a boolean");
      }
      auto schema = js->find("schema");
      if (schema == js->end() || schema->is_null()) {
        return bad("response_format.json_schema.schema", "'response_format.json_schema' has no 'schema'");
      }
      if (auto e = from_schema(*schema, "response_format.json_schema.schema")) return e;
    } else if (type != "text") {
      return bad("response_format", fmt::format("'response_format' type '{}' is not one of text, json_object, json_schema", type));
    }
  }
  if (auto js = body.find("json_schema"); js != body.end() && !js->is_null()) {
    if (auto e = one("json_schema")) return e;
    if (auto e = from_schema(*js, "json_schema")) return e;
  }
  if (auto g = body.find("grammar"); g != body.end() && !g->is_null()) {
    if (!g->is_string()) return bad("grammar", "'grammar' must be a string of GBNF");
    if (auto e = one("grammar")) return e;
    // Schemas were checked by their conversion, which parses the grammar it writes.
    if (auto parsed = constrain::Grammar::parse(g->get<std::string>()); !parsed) {
      return bad("grammar", fmt::format("'grammar': {}", parsed.message()));
    }
    req.grammar = g->get<std::string>();
  }
  return std::nullopt;
}

// tools, tool_choice, parallel_tool_calls (chat only); each function's parameters must be a
// schema owl can enforce, since tool_choice "required" or a name constrains the call to it.
std::optional<ApiError> parse_tools(const Json& body, CompletionRequest& req) {
  if (auto f = body.find("functions"); f != body.end() && !f->is_null()) {
    return bad("functions", "'functions' (the deprecated form) is unsupported; send 'tools'");
  }
  auto t = body.find("tools");
  const bool has_tools = t != body.end() && !t->is_null();
  if (has_tools) {
    if (req.endpoint != Endpoint::kChat) return bad("tools", "'tools' is for chat completions");
    if (!t->is_array()) return bad("tools", "'tools' must be an array");
    if (t->size() > 128) return bad("tools", fmt::format("'tools' has {} entries; at most 128", t->size()));
    std::set<std::string> names;
    for (size_t i = 0; i < t->size(); ++i) {
      const Json& tool = (*t)[i];
      const std::string param = fmt::format("tools[{}]", i);
      if (!tool.is_object() || tool.value("type", "") != "function" || !tool.contains("function") || !tool["function"].is_object()) {
        return bad(param, fmt::format("'{}' must be {{\"type\": \"function\", \"function\": {{...}}}}", param));
      }
      const Json& fn = tool["function"];
      const std::string name = fn.contains("name") && fn["name"].is_string() ? fn["name"].get<std::string>() : "";
      const bool valid_name = !name.empty() && name.size() <= 64 &&
                              name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
      if (!valid_name) return bad(param + ".function.name", fmt::format("'{}.function.name' must be 1 to 64 of a-z, A-Z, 0-9, _ and -", param));
      if (!names.insert(name).second) return bad(param + ".function.name", fmt::format("function '{}' is declared twice", name));
      if (fn.contains("description") && !fn["description"].is_null() && !fn["description"].is_string()) {
        return bad(param + ".function.description", fmt::format("'{}.function.description' must be a string", param));
      }
      if (fn.contains("parameters") && !fn["parameters"].is_null()) {
        const std::string pp = param + ".function.parameters";
        if (!fn["parameters"].is_object()) return bad(pp, fmt::format("'{}' must be a JSON Schema object", pp));
        if (auto g = constrain::json_schema_to_gbnf(fn["parameters"]); !g) return bad(pp, fmt::format("'{}': {}", pp, g.message()));
      }
    }
    req.tools = *t;
  }
  if (auto c = body.find("tool_choice"); c != body.end() && !c->is_null()) {
    if (!has_tools) return bad("tool_choice", "'tool_choice' needs 'tools'");
    if (c->is_string()) {
      const std::string v = c->get<std::string>();
      if (v == "auto") req.tool_choice = router::ToolChoice::kAuto;
      else if (v == "none") req.tool_choice = router::ToolChoice::kNone;
      else if (v == "required") req.tool_choice = router::ToolChoice::kRequired;
      else return bad("tool_choice", fmt::format("'tool_choice' '{}' is not one of none, auto, required or a function", v));
    } else if (c->is_object() && c->value("type", "") == "function" && c->contains("function") && (*c)["function"].is_object() &&
               (*c)["function"].contains("name") && (*c)["function"]["name"].is_string()) {
      req.tool_choice = router::ToolChoice::kNamed;
      req.tool_name = (*c)["function"]["name"].get<std::string>();
      bool found = false;
      for (const Json& tool : req.tools) found = found || tool["function"]["name"] == req.tool_name;
      if (!found) return bad("tool_choice", fmt::format("'tool_choice' names '{}', which is not among the tools", req.tool_name));
    } else {
      return bad("tool_choice", "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
  }
  if (auto p = body.find("parallel_tool_calls"); p != body.end() && !p->is_null()) {
    if (!p->is_boolean()) return bad("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    req.parallel_tool_calls = p->get<bool>();
  }
  if (req.tools_active() && !req.grammar.empty()) {
    return bad("tools", "'tools' and a constrained output (response_format, json_schema, grammar) both shape the answer; send one");
  }
  return std::nullopt;
}

// llama.cpp's `lora`: [{"id": N, "scale": S}, ...], adapters by the ids of GET /lora-adapters.
std::optional<ApiError> parse_lora(const Json& body, CompletionRequest& req) {
  auto it = body.find("lora");
  if (it == body.end() || it->is_null()) return std::nullopt;
  constexpr size_t kMaxLora = 64;
  if (!it->is_array() || it->size() > kMaxLora) {
    return bad("lora", fmt::format("'lora' must be an array of at most {} {{\"id\", \"scale\"}} objects", kMaxLora));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& entry = (*it)[i];
    const std::string param = fmt::format("lora[{}]", i);
    if (!entry.is_object()) return bad("lora", fmt::format("'{}' must be an object {{\"id\", \"scale\"}}, got {}", param, entry.dump()));
    router::LoraChoice c;
    Fields f(entry);
    if (!entry.contains("id")) return bad("lora", fmt::format("'{}.id' is missing", param));
    f.integer("id", 0, std::numeric_limits<int32_t>::max(), c.id);
    f.number("scale", -router::kMaxAdapterScale, router::kMaxAdapterScale, c.scale);
    if (f.error) return bad("lora", fmt::format("'{}': {}", param, f.error->message));
    for (const router::LoraChoice& earlier : req.lora) {
      if (earlier.id == c.id) return bad("lora", fmt::format("'lora' names adapter id {} twice", c.id));
    }
    req.lora.push_back(c);
  }
  return std::nullopt;
}

std::optional<ApiError> parse_common(const Json& body, CompletionRequest& req, int64_t n_vocab) {
  if (auto e = parse_lora(body, req)) return e;
  if (auto e = parse_constraint(body, req)) return e;
  if (auto e = parse_tools(body, req)) return e;
  Fields f(body);
  f.string("model", req.model);
  f.boolean("stream", req.stream);
  if (const Json* so = f.get("stream_options")) {
    if (!so->is_object()) return bad("stream_options", "'stream_options' must be an object");
    if (auto iu = so->find("include_usage"); iu != so->end() && !iu->is_null()) {
      if (!iu->is_boolean()) return bad("stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
      req.include_usage = iu->get<bool>();
    }
  }
  f.integer("n", 1, kMaxChoices, req.n);
  f.integer("max_tokens", 0, std::numeric_limits<int32_t>::max(), req.max_tokens);
  f.integer("max_completion_tokens", 1, std::numeric_limits<int32_t>::max(), req.max_tokens);
  sample::SamplingParams& s = req.sampling;
  s.temperature = 1.0f;  // OpenAI's defaults: plain sampling unless asked
  s.top_p = 1.0f;
  s.top_k = 0;
  s.min_p = 0.0f;
  f.number("temperature", 0, 2, s.temperature);
  f.number("top_p", 0, 1, s.top_p);
  f.number("presence_penalty", -2, 2, s.presence_penalty);
  f.number("frequency_penalty", -2, 2, s.frequency_penalty);
  f.integer("top_k", 0, n_vocab, s.top_k);
  f.number("min_p", 0, 1, s.min_p);
  f.number("typical_p", 0, 1, s.typical_p);
  f.number("repeat_penalty", 0, 10, s.repeat_penalty);
  f.boolean("ignore_eos", req.ignore_eos);
  f.string("user", req.user);
  int64_t seed = 0;
  if (f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), seed)) {
    s.seed = static_cast<uint64_t>(seed);
    req.seeded = true;
  }
  if (f.error) return f.error;
  // Open at 0, as the sampler takes them (sample::validate_ranges).
  if (s.typical_p <= 0) return bad("typical_p", fmt::format("'typical_p' is {}, outside (0, 1]", s.typical_p));
  if (s.repeat_penalty <= 0) return bad("repeat_penalty", fmt::format("'repeat_penalty' is {}, outside (0, 10]", s.repeat_penalty));
  if (auto e = parse_stop(body, req)) return e;
  return parse_logit_bias(body, req, n_vocab);
}

std::optional<ApiError> parse_logprobs(const Json& body, CompletionRequest& req) {
  Fields f(body);
  if (req.endpoint == Endpoint::kChat) {
    f.boolean("logprobs", req.logprobs);
    if (f.integer("top_logprobs", 0, kMaxTopLogprobs, req.top_logprobs) && !req.logprobs) {
      return bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    }
  } else {
    // Completions: `logprobs` is the number of most likely tokens to report.
    if (f.integer("logprobs", 0, kMaxTopLogprobs, req.top_logprobs)) req.logprobs = true;
    f.boolean("echo", req.echo);
    if (req.echo && req.stream) return bad("echo", "'echo' with 'stream' is unsupported; ask without streaming");
    if (req.echo && req.n != 1) return bad("echo", "'echo' with 'n' other than 1 is unsupported");
    // The prompt's log-probabilities (lm-evaluation-harness's loglikelihood requests): each token's
    // after the first, which has none.
    if (req.echo && req.logprobs) req.prompt_logprobs_from = 1;
    std::string suffix;
    if (f.string("suffix", suffix) && !suffix.empty()) return bad("suffix", "'suffix' is unsupported");
    int best_of = 1;
    if (f.integer("best_of", 1, kMaxChoices, best_of) && best_of != 1) return bad("best_of", "'best_of' other than 1 is unsupported");
  }
  if (f.error) return f.error;
  if (req.max_tokens == 0 && !req.echo) return bad("max_tokens", "'max_tokens' 0 needs 'echo': true (the prompt's log-probabilities)");
  if (req.logprobs && req.tools_active()) return bad("logprobs", "'logprobs' together with 'tools' is unsupported");
  req.sampling.logprobs = req.logprobs;
  req.sampling.n_probs = req.logprobs ? req.top_logprobs : 0;
  return std::nullopt;
}

Json token_bytes(std::string_view piece) {
  Json bytes = Json::array();
  for (unsigned char c : piece) bytes.push_back(static_cast<int>(c));
  return bytes;
}

namespace {

// A token's text: spelled by the tokenizer of the model that ran it, or as a hosted model's API
// gave it (no tokenizer here).
std::string_view spelled(int32_t token, const std::string& piece, const tokenizer::Tokenizer* tok) {
  return tok != nullptr ? tok->token_to_piece(token, true) : std::string_view(piece);
}

}  // namespace

Json chat_logprob(const sample::Sampled& s, const tokenizer::Tokenizer* tok) {
  const std::string_view piece = spelled(s.token, s.piece, tok);
  Json top = Json::array();
  for (const sample::TokenLogprob& t : s.top) {
    const std::string_view p = spelled(t.token, t.piece, tok);
    top.push_back({{"token", p}, {"logprob", t.logprob}, {"bytes", token_bytes(p)}});
  }
  return {{"token", piece}, {"logprob", s.logprob}, {"bytes", token_bytes(piece)}, {"top_logprobs", std::move(top)}};
}

// Completions' legacy shape: parallel arrays; text_offset counts bytes from `offset`.
Json completion_logprobs(const std::vector<const sample::Sampled*>& tokens, const tokenizer::Tokenizer* tok, size_t offset) {
  Json j = {{"tokens", Json::array()}, {"token_logprobs", Json::array()}, {"top_logprobs", Json::array()},
            {"text_offset", Json::array()}};
  for (const sample::Sampled* s : tokens) {
    const std::string_view piece = spelled(s->token, s->piece, tok);
    j["tokens"].push_back(piece);
    j["token_logprobs"].push_back(s->logprob);
    Json top = Json::object();
    for (const sample::TokenLogprob& t : s->top) top[std::string(spelled(t.token, t.piece, tok))] = t.logprob;
    j["top_logprobs"].push_back(std::move(top));
    j["text_offset"].push_back(offset);
    offset += piece.size();
  }
  return j;
}

// The prompt as echoed: its text, or its tokens' text when it was given as token ids.
std::string echo_text(const CompletionRequest& req, const tokenizer::Tokenizer* tok) {
  if (req.prompt_tokens.empty() || tok == nullptr) return req.prompt_text;
  return tok->detokenize(req.prompt_tokens);
}

int32_t echo_first_token(const CompletionRequest& req, const tokenizer::Tokenizer& tok) {
  if (!req.prompt_tokens.empty()) return req.prompt_tokens.front();
  const std::vector<int32_t> ids = tok.tokenize(req.prompt_text, {.add_special = true, .parse_special = true});
  return ids.empty() ? 0 : ids.front();
}

}  // namespace

size_t token_text_size(const sample::Sampled& s, const tokenizer::Tokenizer* tok) { return spelled(s.token, s.piece, tok).size(); }

Json error_json(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? Json(nullptr) : Json(e.param)},
            {"code", e.code.empty() ? Json(nullptr) : Json(e.code)}}}};
}

std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::variant<Json, ApiError> parse_body(std::string_view body) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    return ApiError{.status = 400, .message = fmt::format("the body is not valid JSON: {}", e.what())};
  }
  if (!j.is_object()) return ApiError{.status = 400, .message = fmt::format("the body must be a JSON object, got {}", j.type_name())};
  return j;
}

std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view body, Endpoint endpoint,
                                                                   int64_t n_vocab) {
  auto j = parse_body(body);
  if (auto* e = std::get_if<ApiError>(&j)) return *e;
  return parse_completion_request(std::get<Json>(j), endpoint, n_vocab);
}

std::variant<CompletionRequest, ApiError> parse_completion_request(const Json& j, Endpoint endpoint, int64_t n_vocab) {
  CompletionRequest req;
  req.endpoint = endpoint;
  try {
    if (auto e = endpoint == Endpoint::kChat ? parse_messages(j, req) : parse_prompt(j, req, n_vocab)) return *e;
    if (auto e = parse_common(j, req, n_vocab)) return *e;
    if (auto e = parse_logprobs(j, req)) return *e;
    for (const char* key : {"temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "logit_bias",
                            "response_format", "user", "max_completion_tokens"}) {
      if (auto it = j.find(key); it != j.end() && !it->is_null()) req.passthrough[key] = *it;
    }
  } catch (const Json::exception& e) {  // a shape the checks above missed: still the client's error
    return ApiError{.status = 400, .message = fmt::format("invalid request: {}", e.what())};
  }
  return req;
}

const char* finish_reason_text(engine::FinishReason reason) {
  return reason == engine::FinishReason::kLength ? "length" : "stop";
}

Usage total_usage(const std::vector<ChoiceResult>& choices) {
  Usage u;
  for (const ChoiceResult& c : choices) {
    u.prompt_tokens = std::max(u.prompt_tokens, c.stats.n_prompt);
    u.completion_tokens += c.stats.n_generated;
    u.cached_tokens = std::max(u.cached_tokens, c.stats.n_cached);
  }
  return u;
}

Json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

void read_tool_calls(const CompletionRequest& req, constrain::ToolSyntax syntax, std::string_view prefix, ChoiceResult& r) {
  if (!req.tools_active() || !r.ended) return;
  constrain::ParsedOutput parsed = constrain::parse_tool_calls(syntax, std::string(prefix) + r.text, req.tools);
  if (parsed.calls.empty()) return;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (size_t k = 0; k < parsed.calls.size(); ++k) {
    // Mistral's templates take ids of 9 letters and digits; OpenAI's look like call_...
    const bool mistral = syntax == constrain::ToolSyntax::kMistral;
    std::string id = mistral ? "" : "call_";
    for (int i = 0; i < (mistral ? 9 : 24); ++i) id += kAlnum[rng() % (sizeof(kAlnum) - 1)];
    r.tool_call_ids.push_back(std::move(id));
  }
  r.tool_calls = std::move(parsed.calls);
  r.text = std::move(parsed.content);
}

void take_tool_calls(const engine::Event& end, ChoiceResult& r) {
  for (const engine::Event::ToolCall& c : end.tool_calls) {
    r.tool_calls.push_back(constrain::ToolCall{.name = c.name, .arguments = c.arguments});
    r.tool_call_ids.push_back(c.id);
  }
}

namespace {

Json tool_calls_json(const ChoiceResult& r, bool indexed) {
  Json calls = Json::array();
  for (size_t k = 0; k < r.tool_calls.size(); ++k) {
    Json c = indexed ? Json{{"index", k}} : Json::object();
    c["id"] = r.tool_call_ids[k];
    c["type"] = "function";
    c["function"] = {{"name", r.tool_calls[k].name}, {"arguments", r.tool_calls[k].arguments}};
    calls.push_back(std::move(c));
  }
  return calls;
}

}  // namespace

Json make_response(const CompletionRequest& req, const ResponseInfo& info, const std::vector<ChoiceResult>& choices,
                   const tokenizer::Tokenizer* tok) {
  const bool chat = req.endpoint == Endpoint::kChat;
  Json out = {{"id", info.id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", info.created},
              {"model", info.model},
              {"system_fingerprint", "owl"},
              {"choices", Json::array()}};
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    Json logprobs = nullptr;
    if (req.logprobs && chat) {
      logprobs = {{"content", Json::array()}};
      for (const sample::Sampled& s : c.tokens) logprobs["content"].push_back(chat_logprob(s, tok));
    } else if (req.logprobs) {
      std::vector<const sample::Sampled*> ptrs;
      sample::Sampled first;
      if (req.echo && tok != nullptr) {
        // The prompt's tokens first; its first token has no log-probability (null), as OpenAI's.
        first.token = echo_first_token(req, *tok);
        ptrs.push_back(&first);
        for (const sample::Sampled& s : c.prompt_tokens) ptrs.push_back(&s);
      }
      for (const sample::Sampled& s : c.tokens) ptrs.push_back(&s);
      logprobs = completion_logprobs(ptrs, tok, 0);
      if (req.echo && !logprobs["token_logprobs"].empty()) {
        logprobs["token_logprobs"][0] = nullptr;
        logprobs["top_logprobs"][0] = nullptr;
      }
    }
    Json choice = {{"index", i}};
    const bool calls = !c.tool_calls.empty();
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", calls && c.text.empty() ? Json(nullptr) : Json(c.text)}};
      if (calls) choice["message"]["tool_calls"] = tool_calls_json(c, false);
    } else {
      choice["text"] = req.echo ? echo_text(req, tok) + c.text : c.text;
    }
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = calls && c.finish == engine::FinishReason::kStop ? "tool_calls" : finish_reason_text(c.finish);
    out["choices"].push_back(std::move(choice));
  }
  out["usage"] = usage_json(total_usage(choices));
  return out;
}

Json make_chunk(const CompletionRequest& req, const ResponseInfo& info, const ChunkPart& part,
                const tokenizer::Tokenizer* tok) {
  const bool chat = req.endpoint == Endpoint::kChat;
  Json choice = {{"index", part.index}};
  if (chat) {
    Json delta = Json::object();
    if (part.role) delta["role"] = "assistant";
    if (part.calls != nullptr) {
      delta["tool_calls"] = tool_calls_json(*part.calls, true);
    } else if (part.role || !part.finish) {
      delta["content"] = part.text;
    }
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = part.text;
  }
  Json logprobs = nullptr;
  if (req.logprobs && part.sampled) {
    logprobs = chat ? Json{{"content", Json::array({chat_logprob(*part.sampled, tok)})}}
                    : completion_logprobs({part.sampled}, tok, part.text_offset);
  }
  choice["logprobs"] = std::move(logprobs);
  if (part.finish && part.called && *part.finish == engine::FinishReason::kStop) {
    choice["finish_reason"] = "tool_calls";
  } else {
    choice["finish_reason"] = part.finish ? Json(finish_reason_text(*part.finish)) : Json(nullptr);
  }
  Json out = {{"id", info.id},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", info.created},
              {"model", info.model},
              {"system_fingerprint", "owl"},
              {"choices", Json::array({std::move(choice)})}};
  if (req.include_usage) out["usage"] = nullptr;
  return out;
}

Json make_usage_chunk(const CompletionRequest& req, const ResponseInfo& info, const Usage& usage) {
  const bool chat = req.endpoint == Endpoint::kChat;
  return {{"id", info.id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", info.created},
          {"model", info.model},
          {"system_fingerprint", "owl"},
          {"choices", Json::array()},
          {"usage", usage_json(usage)}};
}

}  // namespace owl::serve
