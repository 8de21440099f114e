// The local engine as a Provider: renders chat messages through the model's template,
// tokenizes, checks the context, and submits the choices to the Engine.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "constrain/matcher.h"
#include "engine/embed.h"
#include "engine/engine.h"
#include "model/model.h"
#include "router/adapter_catalog.h"
#include "router/provider.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

namespace owl::router {

struct LocalModel {
  std::string id;                        // the id clients ask for
  int64_t created = 0;                   // unix seconds
  const model::Model* model = nullptr;
  const tokenizer::Tokenizer* tokenizer = nullptr;
  const tmpl::Template* chat_template = nullptr;
  std::string chat_template_source;      // for the tool-call syntax it teaches; "" reads as hermes
  engine::Engine* engine = nullptr;
  double usd_per_second = 0;             // the price of its compute: cores × price of a core-hour / 3600
  // LoRA adapters every sequence runs with (an eval candidate's, a configured model's); null: none.
  std::shared_ptr<const model::AdapterSet> adapters;
  // The adapters requests may pick by name or id, after `adapters`; null: none.
  std::shared_ptr<AdapterCatalog> catalog;
};

// Everything in `LocalModel` must outlive the provider.
class LocalProvider : public Provider {
 public:
  explicit LocalProvider(const LocalModel& local);
  const ModelInfo& info() const override { return info_; }
  std::variant<Submission, ApiError> submit(const CompletionRequest& request,
                                            std::shared_ptr<engine::EventSink> sink) override;
  // Computed on a context of their own, made at the first request (sequences of the engine's
  // context), several inputs per forward pass, beside the engine's batches.
  std::variant<Embeddings, ApiError> embed(const EmbeddingRequest& request) override;
  engine::Gauges gauges() const override { return local_.engine->gauges(); }
  AdapterCatalog* adapter_catalog() const override { return local_.catalog.get(); }
  // The tokens `request` is computed from, its text (rendered through the chat template for chat)
  // followed by `suffix` (a choice scorer's label); `text` gets that text.
  std::variant<std::vector<int32_t>, ApiError> prompt_tokens(const CompletionRequest& request, const std::string& suffix,
                                                             std::string& text) const;
  const tokenizer::Tokenizer& tokenizer() const { return *local_.tokenizer; }

 private:
  std::variant<engine::Embedder*, ApiError> embedder();
  // The adapters the request's sequences run with: the model's own, then those it picked.
  std::variant<std::shared_ptr<const model::AdapterSet>, ApiError> adapters(const CompletionRequest& request) const;
  // The request's grammar bound to the vocabulary; compiled programs (and the token masks they
  // cache) are kept for the most recent grammars, so a schema sent again costs no compilation.
  std::variant<std::shared_ptr<const constrain::Program>, ApiError> program(const std::string& gbnf);

  LocalModel local_;
  std::mutex embedder_mutex_;
  std::unique_ptr<engine::Embedder> embedder_;  // guarded by embedder_mutex_ until made
  ModelInfo info_;
  std::string bos_token_, eos_token_;  // the template's bos_token / eos_token
  core::Result<constrain::ToolSyntax> tool_syntax_;
  std::mutex programs_mutex_;
  std::shared_ptr<const constrain::TokenIndex> token_index_;  // made at the first constrained request
  std::list<std::pair<std::string, std::shared_ptr<const constrain::Program>>> programs_;  // most recent first
};

}  // namespace owl::router
