#include "serve/ollama.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

#include "serve/embeddings.h"

namespace owl::serve {
namespace {

ApiError bad(std::string param, std::string message) {
  return ApiError{.status = 400, .message = std::move(message), .param = std::move(param)};
}

// A member of an object, or null when absent or null (Ollama reads null as absent).
const Json* member(const Json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// An integer, or a float with an integral value (JSON numbers from some clients are floats).
std::optional<int64_t> integer_of(const Json& v) {
  if (v.is_number_integer()) {
    return v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
  }
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 1e15) {
    return static_cast<int64_t>(v.get<double>());
  }
  return std::nullopt;
}

std::optional<ApiError> expect_type(const Json& body, std::string_view key, bool (Json::*is)() const noexcept,
                                    const char* what) {
  const Json* v = member(body, key);
  if (v && !(v->*is)()) return bad(std::string(key), fmt::format("'{}' must be {}, got {}", key, what, v->type_name()));
  return std::nullopt;
}

// The sampling options that go to the OpenAI-shaped body under the same name; the parser there
// checks their types and ranges.
constexpr std::array kSamplingOptions = {"temperature", "top_p", "min_p", "typical_p", "repeat_penalty",
                                         "presence_penalty", "frequency_penalty"};
// Ollama's options that change nothing in owl's output: resources (owl computes on the CPU with
// the server's threads and batch), context shifting (owl never shifts), a removed penalty.
constexpr std::array kNoEffectOptions = {"num_keep", "num_batch", "num_gpu", "main_gpu", "use_mmap", "use_mlock",
                                         "num_thread", "numa", "low_vram", "vocab_only", "f16_kv", "logits_all",
                                         "embedding_only", "draft_num_predict", "penalize_newline"};

bool contains(const auto& names, std::string_view key) {
  for (std::string_view n : names) {
    if (n == key) return true;
  }
  return false;
}

// The options that change nothing unless set away from their neutral value; owl has no
// mirostat and no tail-free sampling.
std::optional<ApiError> check_neutral(std::string_view key, const Json& v) {
  const std::string param = fmt::format("options.{}", key);
  if (!v.is_number()) return bad(param, fmt::format("'{}' must be a number, got {}", param, v.type_name()));
  const double d = v.get<double>();
  if (key == "mirostat" && d != 0) {
    return bad(param, fmt::format("'{}' is {}: owl has no mirostat sampling (0 turns it off); use temperature, "
                                  "top_k, top_p or min_p", param, d));
  }
  if (key == "tfs_z" && d != 1) {
    return bad(param, fmt::format("'{}' is {}: owl has no tail-free sampling (1 turns it off)", param, d));
  }
  return std::nullopt;
}

std::optional<ApiError> translate_stop(const Json& v, std::vector<std::string>& stop) {
  if (v.is_string()) {
    stop.push_back(v.get<std::string>());
    return std::nullopt;
  }
  if (!v.is_array()) return bad("options.stop", fmt::format("'options.stop' must be an array of strings, got {}", v.type_name()));
  for (const Json& s : v) {
    if (!s.is_string()) return bad("options.stop", fmt::format("'options.stop' entries must be strings, got {}", s.type_name()));
    stop.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

// What the options that are not sampling fields of the OpenAI body ask for.
struct OptionsExtra {
  int64_t num_ctx = 0;
  std::optional<int> repeat_last_n;
  std::vector<std::string> stop;
};

std::optional<ApiError> translate_option(std::string_view key, const Json& v, int64_t n_vocab, Json& open,
                                         OptionsExtra& extra) {
  const std::string param = fmt::format("options.{}", key);
  auto int_option = [&](int64_t lo) -> std::variant<int64_t, ApiError> {
    const auto i = integer_of(v);
    if (!i) return bad(param, fmt::format("'{}' must be an integer, got {}", param, v.dump()));
    if (*i < lo) return bad(param, fmt::format("'{}' is {}, below {}", param, *i, lo));
    return *i;
  };
  if (contains(kSamplingOptions, key)) {
    open[std::string(key)] = v;
  } else if (contains(kNoEffectOptions, key) || key == "mirostat_tau" || key == "mirostat_eta") {
    // accepted: owl's output does not depend on them (mirostat's parameters: while it is off)
  } else if (key == "mirostat" || key == "tfs_z") {
    return check_neutral(key, v);
  } else if (key == "stop") {
    return translate_stop(v, extra.stop);
  } else {
    const bool known = key == "num_predict" || key == "num_ctx" || key == "seed" || key == "top_k" || key == "repeat_last_n";
    if (!known) return bad(param, fmt::format("'{}' is not an option owl knows (see docs/serve.md, \"Ollama's API\")", param));
    auto i = int_option(key == "num_ctx" ? 0 : key == "repeat_last_n" ? -1 : INT64_MIN);
    if (auto* e = std::get_if<ApiError>(&i)) return *e;
    const int64_t n = std::get<int64_t>(i);
    if (key == "num_predict" && n > 0) open["max_tokens"] = n;  // -1, -2 and 0: until the context is full
    if (key == "num_ctx") extra.num_ctx = n;
    if (key == "seed" && n >= 0) open["seed"] = n;  // negative (Ollama's default is -1): a random seed
    if (key == "top_k") open["top_k"] = std::clamp<int64_t>(n, 0, n_vocab);  // <= 0 and >= n_vocab: no cut
    if (key == "repeat_last_n") extra.repeat_last_n = static_cast<int>(std::min<int64_t>(n, INT32_MAX));
  }
  return std::nullopt;
}

std::optional<ApiError> translate_options(const Json& body, int64_t n_vocab, Json& open, OptionsExtra& extra) {
  // Ollama's defaults (api.DefaultOptions), where the OpenAI body's differ.
  open["temperature"] = 0.8;
  open["top_k"] = std::min<int64_t>(40, n_vocab);
  open["top_p"] = 0.9;
  open["min_p"] = 0.0;
  const Json* options = member(body, "options");
  if (!options) return std::nullopt;
  if (!options->is_object()) return bad("options", fmt::format("'options' must be an object, got {}", options->type_name()));
  for (const auto& [key, value] : options->items()) {
    if (value.is_null()) continue;
    if (auto e = translate_option(key, value, n_vocab, open, extra)) return e;
  }
  return std::nullopt;
}

// `format`: "json" or a JSON Schema, as OpenAI's response_format.
std::optional<ApiError> translate_format(const Json& body, Json& open) {
  const Json* format = member(body, "format");
  if (!format || (format->is_string() && format->get<std::string>().empty())) return std::nullopt;
  if (format->is_string() && format->get<std::string>() == "json") {
    open["response_format"] = {{"type", "json_object"}};
  } else if (format->is_object()) {
    open["response_format"] = {{"type", "json_schema"},
                               {"json_schema", {{"name", "format"}, {"schema", *format}, {"strict", true}}}};
  } else {
    return bad("format", fmt::format("'format' must be \"json\" or a JSON Schema object, got {}", format->dump().substr(0, 64)));
  }
  return std::nullopt;
}

// What owl cannot do is refused, never dropped: images, fill-in-the-middle, Go templates, the
// deprecated context tokens, thinking.
std::optional<ApiError> refuse_unsupported(const Json& body, OllamaEndpoint endpoint) {
  auto nonempty = [&](const char* key) {
    const Json* v = member(body, key);
    return v && !(v->is_string() && v->get<std::string>().empty()) && !(v->is_array() && v->empty()) &&
           !(v->is_boolean() && !v->get<bool>());
  };
  if (nonempty("images")) return bad("images", "'images' is unsupported: owl serves text models only");
  if (nonempty("suffix")) return bad("suffix", "'suffix' is unsupported: owl has no fill-in-the-middle");
  if (nonempty("template")) {
    return bad("template", "'template' is unsupported: owl renders the model's own chat template (Jinja), not Go templates; "
                           "send \"raw\": true with a prompt you formatted instead");
  }
  if (nonempty("context")) {
    return bad("context", "'context' is unsupported (Ollama deprecates it): send the conversation to /api/chat instead");
  }
  if (nonempty("think")) return bad("think", "'think' is unsupported: owl does not separate a model's thinking from its answer");
  if (endpoint == OllamaEndpoint::kGenerate && nonempty("tools")) return bad("tools", "'tools' is for /api/chat");
  if (nonempty("_debug_render_only")) return bad("_debug_render_only", "'_debug_render_only' is unsupported");
  if (const Json* k = member(body, "keep_alive"); k && !k->is_string() && !k->is_number()) {
    return bad("keep_alive", fmt::format("'keep_alive' must be a duration (\"5m\") or a number of seconds, got {}", k->type_name()));
  }
  for (const char* key : {"stream", "raw", "truncate", "shift", "logprobs"}) {
    if (auto e = expect_type(body, key, &Json::is_boolean, "a boolean")) return e;
  }
  for (const char* key : {"prompt", "system"}) {
    if (auto e = expect_type(body, key, &Json::is_string, "a string")) return e;
  }
  return std::nullopt;
}

// One Ollama message as the OpenAI body takes it: an assistant's tool_calls (arguments as
// objects) become OpenAI's (arguments as JSON text, with ids); images and thinking are refused.
std::variant<Json, ApiError> translate_message(const Json& m, size_t i) {
  const std::string param = fmt::format("messages[{}]", i);
  if (!m.is_object()) return bad(param, fmt::format("'{}' must be an object, got {}", param, m.type_name()));
  for (const char* key : {"images", "thinking"}) {
    const Json* v = member(m, key);
    if (v && !(v->is_array() && v->empty()) && !(v->is_string() && v->get<std::string>().empty())) {
      return bad(param + "." + key, fmt::format("'{}.{}' is unsupported: owl serves text models without thinking", param, key));
    }
  }
  Json out = Json::object();
  for (const char* key : {"role", "content", "tool_name", "tool_call_id"}) {
    if (const Json* v = member(m, key)) out[key] = *v;
  }
  if (const Json* content = member(m, "content"); content && !content->is_string()) {
    return bad(param + ".content", fmt::format("'{}.content' must be a string, got {}", param, content->type_name()));
  }
  if (const Json* calls = member(m, "tool_calls"); calls && !(calls->is_array() && calls->empty())) {
    if (!calls->is_array()) return bad(param + ".tool_calls", fmt::format("'{}.tool_calls' must be an array", param));
    out["tool_calls"] = Json::array();
    for (size_t k = 0; k < calls->size(); ++k) {
      const Json& c = (*calls)[k];
      const Json* fn = c.is_object() ? member(c, "function") : nullptr;
      const Json* name = fn && fn->is_object() ? member(*fn, "name") : nullptr;
      if (name == nullptr || !name->is_string()) {
        return bad(fmt::format("{}.tool_calls[{}]", param, k), fmt::format("'{}.tool_calls[{}]' needs function.name", param, k));
      }
      const Json* args = member(*fn, "arguments");
      const Json* id = member(c, "id");
      out["tool_calls"].push_back({{"id", id && id->is_string() ? id->get<std::string>() : fmt::format("call_{}_{}", i, k)},
                                   {"type", "function"},
                                   {"function", {{"name", *name}, {"arguments", args ? (args->is_string() ? args->get<std::string>() : args->dump()) : "{}"}}}});
    }
  }
  return out;
}

// The prompt: chat messages, generate's prompt through the chat template (with `system`), or
// generate's raw prompt. Sets load_only when there is nothing to run.
std::optional<ApiError> translate_prompt(const Json& body, OllamaRequest& out, Json& open) {
  if (out.endpoint == OllamaEndpoint::kChat) {
    const Json* messages = member(body, "messages");
    if (messages && !messages->is_array()) {
      return bad("messages", fmt::format("'messages' must be an array, got {}", messages->type_name()));
    }
    out.load_only = !messages || messages->empty();
    if (const Json* tools = member(body, "tools"); tools && !(tools->is_array() && tools->empty())) open["tools"] = *tools;
    open["messages"] = Json::array();
    for (size_t i = 0; messages && i < messages->size(); ++i) {
      auto m = translate_message((*messages)[i], i);
      if (auto* e = std::get_if<ApiError>(&m)) return *e;
      open["messages"].push_back(std::move(std::get<Json>(m)));
    }
    return std::nullopt;
  }
  const Json* p = member(body, "prompt");
  const Json* sys = member(body, "system");
  const std::string prompt = p ? p->get<std::string>() : "";
  const std::string system = sys ? sys->get<std::string>() : "";
  out.load_only = prompt.empty();
  if (const Json* raw = member(body, "raw"); raw && raw->get<bool>()) {
    if (!system.empty()) return bad("system", "raw mode does not support template, system, or context");
    out.completion.endpoint = Endpoint::kCompletion;
    open["prompt"] = prompt;
    return std::nullopt;
  }
  open["messages"] = Json::array();
  if (!system.empty()) open["messages"].push_back({{"role", "system"}, {"content", system}});
  open["messages"].push_back({{"role", "user"}, {"content", prompt}});
  return std::nullopt;
}

// `logprobs` and `top_logprobs`, as chat takes them, or as completions' number of alternatives.
std::optional<ApiError> translate_logprobs(const Json& body, Endpoint endpoint, Json& open) {
  const Json* logprobs = member(body, "logprobs");
  const Json* given = member(body, "top_logprobs");
  if (!logprobs || !logprobs->get<bool>()) {
    if (given && !(given->is_number() && given->get<double>() == 0)) {
      return bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    }
    return std::nullopt;
  }
  const auto top = given ? integer_of(*given) : std::optional<int64_t>(0);
  if (!top || *top < 0 || *top > kMaxTopLogprobs) {
    return bad("top_logprobs", fmt::format("'top_logprobs' is {}, not an integer in [0, {}]", given->dump(), kMaxTopLogprobs));
  }
  if (endpoint == Endpoint::kChat) {
    open["logprobs"] = true;
    open["top_logprobs"] = *top;
  } else {
    open["logprobs"] = *top;
  }
  return std::nullopt;
}

// The OpenAI name of a field in an error from parse_completion_request, as the Ollama body calls it.
void rename_param(ApiError& e) {
  std::string ollama;
  if (contains(kSamplingOptions, e.param) || e.param == "top_k" || e.param == "seed") {
    ollama = "options." + e.param;
  } else if (e.param == "max_tokens") {
    ollama = "options.num_predict";
  } else if (e.param.rfind("response_format", 0) == 0) {
    ollama = "format";
  } else {
    return;
  }
  const std::string quoted = "'" + e.param + "'";
  for (size_t at = e.message.find(quoted); at != std::string::npos; at = e.message.find(quoted, at + ollama.size() + 2)) {
    e.message.replace(at, quoted.size(), "'" + ollama + "'");
  }
  e.param = ollama;
}

std::variant<OllamaRequest, ApiError> translate(const Json& body, OllamaEndpoint endpoint, int64_t n_vocab) {
  OllamaRequest out{.endpoint = endpoint};
  out.completion.endpoint = Endpoint::kChat;
  if (auto e = refuse_unsupported(body, endpoint)) return *e;
  Json open = Json::object();
  if (auto e = translate_prompt(body, out, open)) return *e;
  OptionsExtra extra;
  if (auto e = translate_options(body, n_vocab, open, extra)) return *e;
  out.num_ctx = extra.num_ctx;
  if (out.load_only) return out;
  if (auto e = translate_format(body, open)) return *e;
  if (auto e = translate_logprobs(body, out.completion.endpoint, open)) return *e;
  auto parsed = parse_completion_request(open, out.completion.endpoint, n_vocab);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    rename_param(*e);
    return *e;
  }
  out.completion = std::move(std::get<CompletionRequest>(parsed));
  out.completion.model = ollama_model_name(body);
  const Json* stream = member(body, "stream");
  out.completion.stream = !stream || stream->get<bool>();  // Ollama streams unless told not to
  out.completion.stop = std::move(extra.stop);
  if (extra.repeat_last_n) out.completion.sampling.repeat_last_n = *extra.repeat_last_n;
  return out;
}

using engine::Clock;

int64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return b > a ? std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count() : 0;
}

Json token_logprob(std::string_view piece, float logprob) {
  Json bytes = Json::array();
  for (unsigned char c : piece) bytes.push_back(static_cast<int>(c));
  return {{"token", piece}, {"logprob", logprob}, {"bytes", std::move(bytes)}};
}

// Ollama's api.Logprob: the token, its log-probability and bytes, and the most likely tokens.
Json ollama_logprob(const sample::Sampled& s, const tokenizer::Tokenizer& tok) {
  Json j = token_logprob(tok.token_to_piece(s.token, true), s.logprob);
  if (!s.top.empty()) {
    Json top = Json::array();
    for (const sample::TokenLogprob& t : s.top) top.push_back(token_logprob(tok.token_to_piece(t.token, true), t.logprob));
    j["top_logprobs"] = std::move(top);
  }
  return j;
}

// The fields every answer line starts with: the model, the time, the text.
Json ollama_line(OllamaEndpoint endpoint, std::string_view model, std::string_view text) {
  Json j = {{"model", model}, {"created_at", rfc3339(std::chrono::system_clock::now())}};
  if (endpoint == OllamaEndpoint::kChat) {
    j["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    j["response"] = text;
  }
  return j;
}

}  // namespace

std::string ollama_model_name(const Json& body) {
  for (const char* key : {"model", "name"}) {
    if (const Json* v = member(body, key); v && v->is_string() && !v->get<std::string>().empty()) return v->get<std::string>();
  }
  return "";
}

std::variant<OllamaRequest, ApiError> parse_ollama_request(const Json& body, OllamaEndpoint endpoint, int64_t n_vocab) {
  try {
    return translate(body, endpoint, n_vocab);
  } catch (const Json::exception& e) {  // a shape the checks above missed: still the client's error
    return ApiError{.status = 400, .message = fmt::format("invalid request: {}", e.what())};
  }
}

Json ollama_error_json(const ApiError& error) { return {{"error", error.message}}; }

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06}Z", buf, us % 1000000);
}


Json make_ollama_chunk(const OllamaRequest& req, std::string_view model, std::string_view text,
                       const sample::Sampled* sampled, const tokenizer::Tokenizer* tok) {
  Json j = ollama_line(req.endpoint, model, text);
  j["done"] = false;
  if (req.completion.logprobs && sampled != nullptr && tok != nullptr) j["logprobs"] = Json::array({ollama_logprob(*sampled, *tok)});
  return j;
}

Json ollama_tool_calls(const ChoiceResult& result) {
  Json calls = Json::array();
  for (size_t k = 0; k < result.tool_calls.size(); ++k) {
    calls.push_back({{"id", result.tool_call_ids[k]},
                     {"function", {{"index", k}, {"name", result.tool_calls[k].name},
                                   {"arguments", Json::parse(result.tool_calls[k].arguments)}}}});
  }
  return calls;
}

Json make_ollama_calls(const OllamaRequest& req, std::string_view model, const ChoiceResult& result) {
  Json j = ollama_line(req.endpoint, model, result.text);
  j["message"]["tool_calls"] = ollama_tool_calls(result);
  j["done"] = false;
  return j;
}

Json make_ollama_done(const OllamaRequest& req, std::string_view model, const ChoiceResult& result, bool whole,
                      const OllamaTimes& times, const tokenizer::Tokenizer* tok) {
  Json j = ollama_line(req.endpoint, model, whole ? std::string_view(result.text) : std::string_view());
  if (whole && req.endpoint == OllamaEndpoint::kChat && !result.tool_calls.empty()) j["message"]["tool_calls"] = ollama_tool_calls(result);
  j["done"] = true;
  j["done_reason"] = finish_reason_text(result.finish);
  // The engine's own marks: admitted to a slot, first token sampled (the prompt is computed),
  // last token; before admission the request waited for a slot.
  const engine::ChoiceStats& st = result.stats;
  const Clock::time_point end = st.t_end == Clock::time_point{} ? Clock::now() : st.t_end;
  const Clock::time_point first = st.n_generated > 0 ? st.t_first_token : end;
  j["total_duration"] = ns_between(times.arrival, end);
  j["load_duration"] = ns_between(times.arrival, times.submitted);
  j["prompt_eval_count"] = st.n_prompt;
  j["prompt_eval_duration"] = ns_between(st.t_admitted, first);
  j["eval_count"] = st.n_generated;
  j["eval_duration"] = ns_between(first, end);
  if (whole && req.completion.logprobs && tok != nullptr) {
    Json logprobs = Json::array();
    for (const sample::Sampled& s : result.tokens) logprobs.push_back(ollama_logprob(s, *tok));
    j["logprobs"] = std::move(logprobs);
  }
  return j;
}

Json make_ollama_load(OllamaEndpoint endpoint, std::string_view model) {
  Json j = ollama_line(endpoint, model, "");
  j["done"] = true;
  j["done_reason"] = "load";
  return j;
}

std::variant<OllamaEmbedRequest, ApiError> parse_ollama_embed_request(const Json& body, bool legacy) {
  OllamaEmbedRequest out;
  out.embedding.model = ollama_model_name(body);
  const char* key = legacy ? "prompt" : "input";
  if (const Json* input = member(body, key)) {
    if (input->is_string()) {
      if (!input->get<std::string>().empty()) out.embedding.texts.push_back(input->get<std::string>());
    } else if (!legacy && input->is_array()) {
      if (input->size() > kMaxEmbeddingInputs) {
        return bad("input", fmt::format("'input' has {} items, more than {}", input->size(), kMaxEmbeddingInputs));
      }
      for (size_t i = 0; i < input->size(); ++i) {
        const Json& item = (*input)[i];
        if (!item.is_string() || item.get<std::string>().empty()) {
          return bad("input", fmt::format("'input[{}]' is {}, not a non-empty string", i, item.dump().substr(0, 64)));
        }
        out.embedding.texts.push_back(item.get<std::string>());
      }
    } else {
      return bad(key, fmt::format("'{}' must be a string{}, got {}", key, legacy ? "" : " or an array of strings",
                                  input->type_name()));
    }
  }
  if (auto e = expect_type(body, "truncate", &Json::is_boolean, "a boolean")) return *e;
  if (const Json* t = member(body, "truncate")) out.truncate = t->get<bool>();
  if (const Json* d = member(body, "dimensions")) {
    const auto n = integer_of(*d);
    if (!n || *n < 1) return bad("dimensions", fmt::format("'dimensions' is {}, not a positive integer", d->dump()));
    out.embedding.dimensions = *n;
  }
  if (const Json* k = member(body, "keep_alive"); k && !k->is_string() && !k->is_number()) {
    return bad("keep_alive", fmt::format("'keep_alive' must be a duration (\"5m\") or a number of seconds, got {}", k->type_name()));
  }
  Json scratch = Json::object();  // sampling options change nothing in an embedding
  OptionsExtra extra;
  if (auto e = translate_options(body, INT32_MAX, scratch, extra)) return *e;
  out.num_ctx = extra.num_ctx;
  return out;
}

Json make_ollama_embed_response(std::string_view model, const router::Embeddings& result, const OllamaTimes& times,
                                Clock::time_point end) {
  return {{"model", model},
          {"embeddings", result.vectors},
          {"total_duration", ns_between(times.arrival, end)},
          {"load_duration", ns_between(times.arrival, times.submitted)},
          {"prompt_eval_count", result.prompt_tokens}};
}

}  // namespace owl::serve
