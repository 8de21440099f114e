// A completion request as the API accepted it (validated, before any model renders or
// tokenizes it), and the error a request can end with. Every Provider takes this request; the
// server's API layer (serve/api.h) builds it from OpenAI's JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sample/sampler.h"

namespace owl::router {

using Json = nlohmann::ordered_json;

// An error in OpenAI's shape: the HTTP status and the error object's fields.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  double retry_after_s = 0;  // 429 and 503: the Retry-After header (at least 1 s)
};

enum class Endpoint { kChat, kCompletion };

// One entry of llama.cpp's `lora` request field: an adapter by its id (GET /lora-adapters) and
// the scale to run it at.
struct LoraChoice {
  int64_t id = 0;
  float scale = 1.0f;
};
inline constexpr float kMaxAdapterScale = 100.0f;  // |scale| an adapter may run at (API and config)

// tool_choice: "auto" (the model decides), "none", "required" (at least one call), or a named
// function (a call of that one).
enum class ToolChoice { kAuto, kNone, kRequired, kNamed };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;                       // as asked; "" when absent
  Json messages;                           // chat: messages with content flattened to strings
  std::string prompt_text;                 // completion, given as text
  std::vector<int32_t> prompt_tokens;      // completion, given as token ids
  bool stream = false;
  bool include_usage = false;
  int n = 1;
  int64_t max_tokens = -1;                 // -1: until the context is full
  std::vector<std::string> stop;
  sample::SamplingParams sampling;
  bool seeded = false;                     // `seed` was given
  bool logprobs = false;
  int top_logprobs = 0;
  bool ignore_eos = false;                 // extension (llama.cpp's)
  // The log-probabilities of the prompt's tokens from this index on (completions with echo and
  // logprobs; a choice scorer's label), with top_logprobs alternatives; -1: none.
  int64_t prompt_logprobs_from = -1;
  bool echo = false;                       // completions: the answer's text (and logprobs) begin with the prompt's
  std::string user;
  // The output's grammar (GBNF), from response_format or llama.cpp's json_schema / grammar
  // fields; "" when unconstrained.
  std::string grammar;
  // The JSON Schema the output must satisfy (response_format json_schema, llama.cpp's
  // json_schema); null when none. json_output: the output must be JSON (json_object too).
  Json schema;
  bool json_output = false;
  // OpenAI's optional fields as the client sent them (sampling, seed, response_format, user...),
  // for a hosted upstream, which gets them as they came rather than owl's defaults.
  Json passthrough = Json::object();
  // The client marked the request as holding sensitive data (header x-owl-sensitive: true).
  bool marked_sensitive = false;
  // The HTTP request's x-* headers, names in lower case, for a route's rules.
  std::vector<std::pair<std::string, std::string>> headers;
  // LoRA adapters of a local model (router/adapter_catalog.h): the one its model id names
  // (BASE:NAME; "" for none), and llama.cpp's `lora` field.
  std::string adapter;
  std::vector<LoraChoice> lora;
  // Chat: the functions the model may call (OpenAI's tools array, validated); null when none.
  Json tools;
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_name;          // kNamed
  bool parallel_tool_calls = true;
  bool tools_active() const { return tools.is_array() && !tools.empty() && tool_choice != ToolChoice::kNone; }
};

// POST /v1/embeddings, validated: each input as text or as token ids.
struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> texts;                  // one per input given as text
  std::vector<std::vector<int32_t>> token_inputs;  // one per input given as token ids
  bool base64 = false;                             // encoding_format "base64": float32 little-endian bytes
  int64_t dimensions = 0;                          // 0: the model's
  std::string user;
  size_t size() const { return texts.size() + token_inputs.size(); }
};

// The vectors of an embeddings request, in input order, with the tokens they took.
struct Embeddings {
  std::vector<std::vector<float>> vectors;
  int64_t prompt_tokens = 0;
};

}  // namespace owl::router
