// The OpenAI-compatible request and response shapes: parsing and validating a request body
// (every error names the parameter and the value, with OpenAI's status and JSON shape), and
// building responses and stream chunks for /v1/chat/completions and /v1/completions.
// Reference: the OpenAI API reference (chat/completions, completions, errors); everything here
// is pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "constrain/tool_calls.h"
#include "engine/events.h"
#include "router/request.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace owl::serve {

using Json = router::Json;
using router::ApiError;
using router::CompletionRequest;
using router::Endpoint;

Json error_json(const ApiError& error);
// Serializes with invalid UTF-8 replaced (model output need not be valid UTF-8).
std::string dump_json(const Json& j);

inline constexpr int kMaxChoices = 8;
inline constexpr int kMaxTopLogprobs = 20;

// A request body: a JSON object, or the error naming what is wrong with it.
std::variant<Json, ApiError> parse_body(std::string_view body);
// Parses and validates a body; n_vocab bounds logit_bias keys and prompt token ids.
std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view body, Endpoint endpoint,
                                                                   int64_t n_vocab);
// The same over a body already parsed into an object.
std::variant<CompletionRequest, ApiError> parse_completion_request(const Json& body, Endpoint endpoint, int64_t n_vocab);

// What one choice produced, collected from its events.
struct ChoiceResult {
  std::string text;
  // With tools: the calls the model's output held (its text is then what was outside them).
  std::vector<constrain::ToolCall> tool_calls;
  std::vector<std::string> tool_call_ids;
  std::vector<sample::Sampled> tokens;  // with logprobs requested
  std::vector<sample::Sampled> prompt_tokens;  // echo with logprobs: the prompt's tokens after its first
  engine::FinishReason finish = engine::FinishReason::kLength;
  engine::ChoiceStats stats;
  bool ended = false;
};

// A chat choice that ended with tools active: the calls in its output (after `prefix`, the start
// of a call the prompt ended with), with fresh ids; its text becomes what was outside them.
void read_tool_calls(const CompletionRequest& req, constrain::ToolSyntax syntax, std::string_view prefix, ChoiceResult& r);
// The tool calls a hosted model's API returned (the end event's), as the choice's.
void take_tool_calls(const engine::Event& end, ChoiceResult& r);

struct ResponseInfo {
  std::string id;       // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};
Usage total_usage(const std::vector<ChoiceResult>& choices);
Json usage_json(const Usage& usage);

const char* finish_reason_text(engine::FinishReason reason);  // OpenAI's "stop" / "length"

// The whole (non-streaming) response.
// `tokenizer` spells logprobs' tokens; null (a hosted model's answer): the pieces its API gave.
Json make_response(const CompletionRequest& req, const ResponseInfo& info, const std::vector<ChoiceResult>& choices,
                   const tokenizer::Tokenizer* tokenizer);

// One stream chunk of choice `index`: a text delta with its token's logprobs (`sampled` may be
// null), the opening role delta (chat), or the end with its finish reason.
struct ChunkPart {
  int index = 0;
  bool role = false;
  std::string text;
  const sample::Sampled* sampled = nullptr;
  size_t text_offset = 0;  // completions' logprobs: bytes of the choice's tokens before this one
  std::optional<engine::FinishReason> finish;
  const ChoiceResult* calls = nullptr;  // a choice's tool calls, sent in one delta
  bool called = false;                  // the finish chunk of a choice that called tools
};
Json make_chunk(const CompletionRequest& req, const ResponseInfo& info, const ChunkPart& part,
                const tokenizer::Tokenizer* tokenizer);
// Bytes of a sampled token's text (spelled as make_chunk spells it), for completions' text_offset.
size_t token_text_size(const sample::Sampled& sampled, const tokenizer::Tokenizer* tokenizer);
// The last chunk with `stream_options.include_usage`: no choices, the usage.
Json make_usage_chunk(const CompletionRequest& req, const ResponseInfo& info, const Usage& usage);

}  // namespace owl::serve
