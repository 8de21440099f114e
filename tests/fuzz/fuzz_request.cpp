// libFuzzer target: OpenAI request bodies (chat, completions, embeddings) and Ollama's (generate,
// chat, embed). Any bytes are either a valid request or an ApiError with a 4xx status; nothing
// may crash or throw.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "serve/api.h"
#include "serve/embeddings.h"
#include "serve/ollama.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const auto endpoint : {owl::serve::Endpoint::kChat, owl::serve::Endpoint::kCompletion}) {
    auto parsed = owl::serve::parse_completion_request(body, endpoint, 512);
    if (const auto* error = std::get_if<owl::serve::ApiError>(&parsed)) {
      if (error->status < 400 || error->status >= 500) std::abort();
      (void)owl::serve::dump_json(owl::serve::error_json(*error));
    }
  }
  auto body_json = owl::serve::parse_body(body);
  if (const auto* json = std::get_if<owl::serve::Json>(&body_json)) {
    auto parsed = owl::serve::parse_embedding_request(*json, 512);
    if (const auto* error = std::get_if<owl::serve::ApiError>(&parsed)) {
      if (error->status < 400 || error->status >= 500) std::abort();
    } else {
      const auto& req = std::get<owl::serve::EmbeddingRequest>(parsed);
      (void)owl::serve::make_embedding_response(req, {.vectors = {{0.5f, -1.0f}}, .prompt_tokens = 1}, "m");
    }
    for (const auto endpoint : {owl::serve::OllamaEndpoint::kGenerate, owl::serve::OllamaEndpoint::kChat}) {
      auto ollama = owl::serve::parse_ollama_request(*json, endpoint, 512);
      if (const auto* error = std::get_if<owl::serve::ApiError>(&ollama)) {
        if (error->status < 400 || error->status >= 500) std::abort();
        (void)owl::serve::dump_json(owl::serve::ollama_error_json(*error));
      }
    }
    for (const bool legacy : {false, true}) {
      auto embed = owl::serve::parse_ollama_embed_request(*json, legacy);
      if (const auto* error = std::get_if<owl::serve::ApiError>(&embed)) {
        if (error->status < 400 || error->status >= 500) std::abort();
      }
    }
  }
  return 0;
}
