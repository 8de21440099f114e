#include "serve/embeddings.h"

#include <bit>
#include <cstring>

#include <fmt/format.h>

namespace owl::serve {
namespace {

ApiError bad_input(std::string message) { return ApiError{.message = std::move(message), .param = "input"}; }

// One array of token ids, each in [0, n_vocab).
std::variant<std::vector<int32_t>, ApiError> token_ids(const Json& array, int64_t n_vocab, size_t index) {
  std::vector<int32_t> ids;
  for (const Json& t : array) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab) {
      return bad_input(fmt::format("input {} holds {}, not a token id in [0, {})", index, t.dump(), n_vocab));
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  if (ids.empty()) return bad_input(fmt::format("input {} is an empty array", index));
  return ids;
}

std::optional<ApiError> parse_input(const Json& input, int64_t n_vocab, EmbeddingRequest& req) {
  if (input.is_string()) {
    if (input.get<std::string>().empty()) return bad_input("'input' is an empty string");
    req.texts.push_back(input.get<std::string>());
    return std::nullopt;
  }
  if (!input.is_array() || input.empty()) {
    return bad_input("'input' must be a string, an array of strings or an array of token ids, and not empty");
  }
  if (input.size() > kMaxEmbeddingInputs) {
    return bad_input(fmt::format("'input' has {} items, more than {}", input.size(), kMaxEmbeddingInputs));
  }
  if (input[0].is_number()) {  // one input as token ids
    auto ids = token_ids(input, n_vocab, 0);
    if (auto* e = std::get_if<ApiError>(&ids)) return *e;
    req.token_inputs.push_back(std::move(std::get<std::vector<int32_t>>(ids)));
    return std::nullopt;
  }
  const bool strings = input[0].is_string();
  for (size_t i = 0; i < input.size(); ++i) {
    const Json& item = input[i];
    if (strings && item.is_string() && !item.get<std::string>().empty()) {
      req.texts.push_back(item.get<std::string>());
    } else if (!strings && item.is_array()) {
      auto ids = token_ids(item, n_vocab, i);
      if (auto* e = std::get_if<ApiError>(&ids)) return *e;
      req.token_inputs.push_back(std::move(std::get<std::vector<int32_t>>(ids)));
    } else {
      return bad_input(fmt::format("input {} is {}: every item must be a non-empty {}", i, item.dump(),
                                   strings ? "string" : "array of token ids"));
    }
  }
  return std::nullopt;
}

}  // namespace

std::variant<EmbeddingRequest, ApiError> parse_embedding_request(const Json& body, int64_t n_vocab) {
  EmbeddingRequest req;
  if (auto it = body.find("model"); it != body.end() && it->is_string()) req.model = it->get<std::string>();
  auto input = body.find("input");
  if (input == body.end()) return bad_input("'input' is required");
  if (auto e = parse_input(*input, n_vocab, req)) return *e;
  if (auto it = body.find("encoding_format"); it != body.end() && !it->is_null()) {
    if (*it != "float" && *it != "base64") {
      return ApiError{.message = fmt::format("'encoding_format' is {}, not \"float\" or \"base64\"", it->dump()),
                      .param = "encoding_format"};
    }
    req.base64 = *it == "base64";
  }
  if (auto it = body.find("dimensions"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1) {
      return ApiError{.message = fmt::format("'dimensions' is {}, not a positive integer", it->dump()),
                      .param = "dimensions"};
    }
    req.dimensions = it->get<int64_t>();
  }
  if (auto it = body.find("user"); it != body.end() && it->is_string()) req.user = it->get<std::string>();
  return req;
}

std::string base64_floats(const std::vector<float>& values) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static_assert(std::endian::native == std::endian::little, "float32 bytes are sent little-endian");
  std::string bytes(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = v << 8 | (k < n ? static_cast<uint8_t>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

Json make_embedding_response(const EmbeddingRequest& req, const Embeddings& result, const std::string& model) {
  Json data = Json::array();
  for (size_t i = 0; i < result.vectors.size(); ++i) {
    Json item = {{"object", "embedding"}, {"index", i}};
    item["embedding"] = req.base64 ? Json(base64_floats(result.vectors[i])) : Json(result.vectors[i]);
    data.push_back(std::move(item));
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", model},
          {"usage", {{"prompt_tokens", result.prompt_tokens}, {"total_tokens", result.prompt_tokens}}}};
}

}  // namespace owl::serve
