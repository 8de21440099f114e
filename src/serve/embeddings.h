// POST /v1/embeddings in OpenAI's shape: the request's validation and the response, pure and
// thread-safe (the handler is in server.cpp).
#pragma once

#include <string>
#include <variant>

#include "serve/api.h"

namespace owl::serve {

using router::EmbeddingRequest;
using router::Embeddings;

inline constexpr size_t kMaxEmbeddingInputs = 2048;

// `input`: a string, an array of strings, an array of token ids or an array of such arrays;
// `encoding_format` float or base64; `dimensions`; `user`. n_vocab bounds token ids.
std::variant<EmbeddingRequest, ApiError> parse_embedding_request(const Json& body, int64_t n_vocab);

Json make_embedding_response(const EmbeddingRequest& req, const Embeddings& result, const std::string& model);

// RFC 4648 base64 of the float32 values' little-endian bytes (OpenAI's encoding_format "base64").
std::string base64_floats(const std::vector<float>& values);

}  // namespace owl::serve
