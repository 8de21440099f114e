// Ollama's HTTP API (ollama/ollama docs/api.md) over the requests of the OpenAI endpoints: a
// /api/generate or /api/chat body becomes the OpenAI-shaped body that parse_completion_request
// validates (`format` as response_format, `options` as sampling fields), so that both APIs accept
// and refuse the same things and run through the same provider; responses, stream lines and
// model descriptions in Ollama's shape. Everything here is pure and thread-safe; the handlers
// are in ollama_handlers.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "router/provider.h"
#include "serve/api.h"

namespace owl::serve {

using router::EmbeddingRequest;

enum class OllamaEndpoint { kGenerate, kChat };

// The version of Ollama's API these endpoints follow (/api/version): its clients gate features
// on it.
inline constexpr const char* kOllamaApiVersion = "0.12.11";

struct OllamaRequest {
  OllamaEndpoint endpoint = OllamaEndpoint::kGenerate;
  CompletionRequest completion;  // what the provider runs (chat, or completion for raw prompts)
  bool load_only = false;        // no prompt / no messages: Ollama's "load the model", nothing runs
  int64_t num_ctx = 0;           // options.num_ctx; 0 when not given
};

// The model a body names: "model", or "name" as older clients send it; "" when neither.
std::string ollama_model_name(const Json& body);

// Translates and validates a /api/generate or /api/chat body; n_vocab bounds top_k. An error
// names Ollama's field (`options.temperature`, `format`), in its message and its param.
std::variant<OllamaRequest, ApiError> parse_ollama_request(const Json& body, OllamaEndpoint endpoint, int64_t n_vocab);

// Ollama's error shape, {"error": message}.
Json ollama_error_json(const ApiError& error);

// RFC 3339 in UTC with microseconds, as Ollama's created_at and modified_at.
std::string rfc3339(std::chrono::system_clock::time_point t);

// When a request arrived and when the engine took it, for the durations of the final line.
struct OllamaTimes {
  engine::Clock::time_point arrival;
  engine::Clock::time_point submitted;
};

// One line of a streamed answer: a piece of text, with its token's log-probabilities when asked
// (`sampled` may be null; `tok`, the tokenizer that spells the tokens, too).
Json make_ollama_chunk(const OllamaRequest& req, std::string_view model, std::string_view text,
                       const sample::Sampled* sampled, const tokenizer::Tokenizer* tok);
// A chat stream's line with a choice's tool calls (Ollama's shape: arguments as objects), sent
// when the answer ends; the text around them with it.
Json make_ollama_calls(const OllamaRequest& req, std::string_view model, const ChoiceResult& result);
// The last line of a stream (no text) or, `whole`, the whole answer: done, done_reason, the
// token counts and the durations in nanoseconds.
Json make_ollama_done(const OllamaRequest& req, std::string_view model, const ChoiceResult& result, bool whole,
                      const OllamaTimes& times, const tokenizer::Tokenizer* tok);
// The answer to a request with nothing to run: done, done_reason "load".
Json make_ollama_load(OllamaEndpoint endpoint, std::string_view model);

// POST /api/embed ("input": a string or strings; "truncate", "dimensions") and, `legacy`, the
// older /api/embeddings ("prompt": one string). An empty input embeds nothing.
struct OllamaEmbedRequest {
  EmbeddingRequest embedding;
  bool truncate = true;  // cut inputs longer than the context instead of refusing them
  int64_t num_ctx = 0;
};
std::variant<OllamaEmbedRequest, ApiError> parse_ollama_embed_request(const Json& body, bool legacy);
Json make_ollama_embed_response(std::string_view model, const router::Embeddings& result, const OllamaTimes& times,
                                engine::Clock::time_point end);

// Ollama's name of a model id: "stories260K:latest"; an id with a tag stays as it is.
std::string ollama_name(std::string_view id);
// GET /api/tags: one model.
Json ollama_tags_entry(const router::ModelInfo& model);
// GET /api/ps: one model held in memory, with the bytes of its KV cache.
Json ollama_ps_entry(const router::ModelInfo& model, int64_t kv_bytes);
// POST /api/show: what the model is; `verbose` includes the long metadata arrays (the vocabulary).
Json ollama_show(const router::ModelInfo& model, bool verbose);

}  // namespace owl::serve
