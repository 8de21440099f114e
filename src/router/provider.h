// The one interface behind which every model is served (LiteLLM's completion() over many
// backends is the model): submit a completion request, receive a stream of events. The local
// engine is the first implementation (local_provider.h); hosted OpenAI-compatible upstreams and
// other owl nodes plug in here, and the router chooses among providers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "constrain/tool_calls.h"
#include "engine/events.h"
#include "engine/scheduler.h"
#include "router/request.h"
#include "tokenizer/tokenizer.h"

namespace owl::gguf {
class GgufFile;
}

namespace owl::router {

class AdapterCatalog;

// What a provider tells about the model it serves.
struct ModelInfo {
  std::string id;                                  // the id clients ask for (/v1/models)
  int64_t created = 0;                             // unix seconds
  std::string owned_by = "owl";
  // The model's tokenizer when it runs here (token ids, logprobs' token text, /tokenize); null
  // for a model served elsewhere.
  const tokenizer::Tokenizer* tokenizer = nullptr;
  int64_t n_vocab = 0;                             // 0 when unknown
  int64_t n_ctx = 0;                               // positions per sequence; 0 when unknown
  // The model's GGUF file (metadata, tensors) when it runs here, for clients that show what a
  // model is (Ollama's /api/tags, /api/show); null for a model served elsewhere.
  const gguf::GgufFile* file = nullptr;
  // What an answer costs (US dollars): per token for a hosted model, per second of compute for a
  // local one (its cores × the configured price of a core-hour).
  double usd_per_input_token = 0;
  double usd_per_output_token = 0;
  double usd_per_second = 0;
  double cost_usd(int64_t prompt_tokens, int64_t completion_tokens, double seconds) const {
    return static_cast<double>(prompt_tokens) * usd_per_input_token + static_cast<double>(completion_tokens) * usd_per_output_token +
           seconds * usd_per_second;
  }
};

// Who answered a routed request and why (router/route_provider.h). The route fills it before it
// pushes the request's first event, and `cost_usd` before the last, so that a reader that popped
// an event reads it without a lock.
struct RouteDecision {
  std::string route;           // the route's name
  std::string kind;            // "cascade" (its first step answered), "rule", "escalated", "fallback", "sensitive", "failed"
  std::string model;           // the model that answered
  std::vector<std::string> detectors;  // sensitive-data detectors that fired (names only)
  std::vector<std::string> steps;      // each model asked, with its outcome: "small: escalated (mean_logprob -2.31 < -1.2)"
  std::optional<double> mean_logprob;  // the confidence of the first step's answer, when measured
  double cost_usd = 0;                 // every step asked, priced
  // The answering provider's submission: its tokenizer (logprobs' token text; null when hosted),
  // how its tool calls are written, the prompt it rendered.
  const tokenizer::Tokenizer* tokenizer = nullptr;
  constrain::ToolSyntax tool_syntax = constrain::ToolSyntax::kHermes;
  std::string tool_prefix;
  std::string prompt_text;
  // The error that ends the request, when no step could answer (the kError event's status).
  std::optional<ApiError> error;
};

// A request that started: what it was sent as (for the request log).
struct Submission {
  std::string prompt_text;  // the rendered prompt; "" when given as tokens
  int64_t prompt_tokens = 0;
  // With tools: how the model writes calls, and the start of a call put at the end of the
  // prompt (tool_choice "required" or named), which the output continues.
  constrain::ToolSyntax tool_syntax = constrain::ToolSyntax::kHermes;
  std::string tool_prefix;
  // A routed request: filled as the route runs; null for a request a model answers itself.
  std::shared_ptr<RouteDecision> decision;
};

// Threading: every method may be called from any thread.
class Provider {
 public:
  virtual ~Provider() = default;
  virtual const ModelInfo& info() const = 0;
  // Starts choices 0..n-1 of `request`; their events (engine/events.h) go to `sink`, each choice
  // ending with one kEnd or kError. On an error nothing started and the sink hears nothing.
  virtual std::variant<Submission, ApiError> submit(const CompletionRequest& request,
                                                    std::shared_ptr<engine::EventSink> sink) = 0;
  // The embeddings of every input (blocking); a provider without them answers 400.
  virtual std::variant<Embeddings, ApiError> embed(const EmbeddingRequest& /*request*/) {
    return ApiError{.message = fmt::format("the model '{}' does not serve embeddings", info().id), .param = "model"};
  }
  // Cancels every request still running that has no engine of this process to stop it (a
  // hosted answer being relayed, a route's held step): they end as cancelled. For shutdown.
  virtual void cancel_running() {}
  // The engine's state, for metrics; zeros for a provider without one.
  virtual engine::Gauges gauges() const { return {}; }
  // The LoRA adapters it serves by name, as the model ids `{id}:{name}` (adapter_catalog.h);
  // null for a provider that serves none.
  virtual AdapterCatalog* adapter_catalog() const { return nullptr; }
};

}  // namespace owl::router
