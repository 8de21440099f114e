#include "router/local_provider.h"

#include <random>

#include <fmt/format.h>

#include "template/chat.h"

namespace owl::router {
namespace {

// The prompt's tokens, through the chat template for chat requests; `text` gets the rendered prompt.
std::variant<std::vector<int32_t>, ApiError> build_prompt(const LocalModel& m, const CompletionRequest& req,
                                                          const std::string& bos, const std::string& eos,
                                                          const std::string& suffix, std::string& text) {
  const tokenizer::Tokenizer& tok = *m.tokenizer;
  if (req.endpoint == Endpoint::kCompletion) {
    if (!req.prompt_tokens.empty()) return req.prompt_tokens;
    text = req.prompt_text + suffix;
    std::vector<int32_t> ids = tok.tokenize(text, {.add_special = true, .parse_special = true});
    if (ids.empty()) return ApiError{.message = "'prompt' is empty and the model adds no BOS token", .param = "prompt"};
    return ids;
  }
  tmpl::ChatOptions options;
  options.add_generation_prompt = true;
  options.bos_token = bos;
  options.eos_token = eos;
  if (req.tools_active()) options.tools = req.tools;
  auto rendered = tmpl::render_chat(*m.chat_template, req.messages, options);
  if (!rendered && !req.messages.empty() && req.messages[0].value("role", "") == "system") {
    // Templates without a system role (Gemma's, Mistral's) raise on one: its text goes at the
    // start of the first user message, as Ollama and those models' own templates do.
    if (auto folded = tmpl::render_chat(*m.chat_template, tmpl::fold_system_message(req.messages), options)) {
      rendered = std::move(folded);
    }
  }
  if (!rendered) {
    return ApiError{.message = fmt::format("the chat template failed on these messages: {}", rendered.message()),
                    .param = "messages"};
  }
  *rendered += suffix;
  text = *rendered;
  const bool has_bos = !bos.empty() && rendered->rfind(bos, 0) == 0;
  std::vector<int32_t> ids = tok.tokenize(*rendered, {.add_special = !has_bos, .parse_special = true});
  if (ids.empty()) return ApiError{.message = "the rendered prompt is empty", .param = "messages"};
  return ids;
}

constexpr size_t kMaxPrograms = 32;

std::vector<engine::SequenceRequest> make_sequences(const CompletionRequest& req, const std::vector<int32_t>& prompt,
                                                    const sample::ConstraintFactory& constraint,
                                                    const std::shared_ptr<const model::AdapterSet>& adapters) {
  std::vector<engine::SequenceRequest> sequences(static_cast<size_t>(req.n));
  std::random_device random;
  for (int i = 0; i < req.n; ++i) {
    engine::SequenceRequest& s = sequences[static_cast<size_t>(i)];
    s.prompt = prompt;
    s.params.sampling = req.sampling;
    s.params.sampling.seed = req.seeded ? sample::choice_seed(req.sampling.seed, i)
                                        : (static_cast<uint64_t>(random()) << 32) ^ random();
    s.params.stop = req.stop;
    s.params.max_tokens = req.max_tokens;
    s.params.ignore_eos = req.ignore_eos;
    s.params.constraint = constraint;
    s.adapters = adapters;
    s.prompt_logprobs_from = req.prompt_logprobs_from;
    s.prompt_top_logprobs = req.top_logprobs;
  }
  return sequences;
}

}  // namespace

LocalProvider::LocalProvider(const LocalModel& local)
    : local_(local),
      info_{.id = local.id, .created = local.created, .tokenizer = local.tokenizer, .n_vocab = local.model->config.n_vocab,
            .n_ctx = local.engine->n_ctx(), .file = &local.model->file, .usd_per_second = local.usd_per_second},
      bos_token_(local.tokenizer->token_to_piece(local.tokenizer->bos(), true)),
      eos_token_(local.tokenizer->token_to_piece(local.tokenizer->eos(), true)),
      tool_syntax_(constrain::tool_syntax(local.chat_template_source)) {}

std::variant<std::vector<int32_t>, ApiError> LocalProvider::prompt_tokens(const CompletionRequest& request,
                                                                          const std::string& suffix, std::string& text) const {
  return build_prompt(local_, request, bos_token_, eos_token_, suffix, text);
}

std::variant<Submission, ApiError> LocalProvider::submit(const CompletionRequest& req,
                                                         std::shared_ptr<engine::EventSink> sink) {
  Submission sub;
  std::string tool_grammar;
  if (req.tools_active()) {
    if (!tool_syntax_) {
      return ApiError{.message = fmt::format("the model '{}' cannot take tools: {}", info_.id, tool_syntax_.message()),
                      .param = "tools"};
    }
    sub.tool_syntax = *tool_syntax_;
    if (req.tool_choice == ToolChoice::kRequired || req.tool_choice == ToolChoice::kNamed) {
      // A named function is called once (as OpenAI does); "required" may call several.
      const bool parallel = req.tool_choice == ToolChoice::kRequired && req.parallel_tool_calls;
      auto forced = constrain::forced_call(*tool_syntax_, req.tools, req.tool_name, parallel);
      if (!forced) return ApiError{.message = forced.message(), .param = "tools"};
      sub.tool_prefix = forced->prefix;
      tool_grammar = forced->gbnf;
    }
  }
  auto prompt = build_prompt(local_, req, bos_token_, eos_token_, sub.tool_prefix, sub.prompt_text);
  if (auto* e = std::get_if<ApiError>(&prompt)) return *e;
  const auto& ids = std::get<std::vector<int32_t>>(prompt);
  sub.prompt_tokens = static_cast<int64_t>(ids.size());
  const int64_t n_ctx = local_.engine->n_ctx();
  const char* what = req.endpoint == Endpoint::kChat ? "messages" : "prompt";
  if (sub.prompt_tokens >= n_ctx) {
    return ApiError{.message = fmt::format("this model's context is {} tokens per sequence, but the prompt has {} "
                                           "tokens; shorten the {}", n_ctx, ids.size(), what),
                    .param = what, .code = "context_length_exceeded"};
  }
  sample::ConstraintFactory constraint;
  if (const std::string& gbnf = tool_grammar.empty() ? req.grammar : tool_grammar; !gbnf.empty()) {
    auto made = program(gbnf);
    if (auto* e = std::get_if<ApiError>(&made)) return *e;
    constraint = std::get<std::shared_ptr<const constrain::Program>>(made)->factory();
  }
  auto adapters = this->adapters(req);
  if (auto* e = std::get_if<ApiError>(&adapters)) return *e;
  const auto& set = std::get<std::shared_ptr<const model::AdapterSet>>(adapters);
  switch (local_.engine->submit(make_sequences(req, ids, constraint, set), std::move(sink))) {
    case engine::SubmitResult::kAccepted: return sub;
    case engine::SubmitResult::kQueueFull:
      return ApiError{.status = 429,
                      .message = "the server is busy: every sequence slot is taken and the queue is full; retry later",
                      .type = "server_error", .code = "server_busy"};
    case engine::SubmitResult::kStopping: break;
  }
  return ApiError{.status = 503, .message = "the server is shutting down", .type = "server_error", .code = "shutting_down"};
}

std::variant<std::shared_ptr<const model::AdapterSet>, ApiError> LocalProvider::adapters(const CompletionRequest& req) const {
  if (req.adapter.empty() && req.lora.empty()) return local_.adapters;
  if (local_.catalog == nullptr) {
    if (!req.adapter.empty()) {
      return ApiError{.status = 404, .message = fmt::format("the model '{}:{}' does not exist: '{}' serves no adapters", info_.id,
                                                            req.adapter, info_.id),
                      .param = "model", .code = "model_not_found"};
    }
    return ApiError{.message = fmt::format("'lora': the model '{}' serves no adapters", info_.id), .param = "lora"};
  }
  auto picked = local_.catalog->resolve(info_.id, req.adapter, req.lora);
  if (auto* e = std::get_if<ApiError>(&picked)) return *e;
  auto& set = std::get<std::shared_ptr<const model::AdapterSet>>(picked);
  if (local_.adapters == nullptr || set == nullptr) return set != nullptr ? set : local_.adapters;
  auto both = std::make_shared<model::AdapterSet>(*local_.adapters);
  both->adapters.insert(both->adapters.end(), set->adapters.begin(), set->adapters.end());
  return std::shared_ptr<const model::AdapterSet>(std::move(both));
}

std::variant<std::shared_ptr<const constrain::Program>, ApiError> LocalProvider::program(const std::string& gbnf) {
  std::lock_guard<std::mutex> lock(programs_mutex_);
  for (auto it = programs_.begin(); it != programs_.end(); ++it) {
    if (it->first == gbnf) {
      programs_.splice(programs_.begin(), programs_, it);
      return programs_.front().second;
    }
  }
  if (!token_index_) token_index_ = std::make_shared<const constrain::TokenIndex>(*local_.tokenizer);
  auto made = constrain::compile(gbnf, token_index_);
  if (!made) return ApiError{.message = made.message(), .param = "grammar"};
  programs_.emplace_front(gbnf, *made);
  if (programs_.size() > kMaxPrograms) programs_.pop_back();
  return *made;
}

std::variant<engine::Embedder*, ApiError> LocalProvider::embedder() {
  std::lock_guard<std::mutex> lock(embedder_mutex_);
  if (!embedder_) {
    const engine::EngineOptions& o = local_.engine->options();
    auto made = engine::Embedder::make(*local_.model, {.n_ctx = local_.engine->n_ctx(), .n_threads = o.n_threads,
                                                       .pooling = engine::model_pooling(*local_.model)});
    if (!made) return ApiError{.status = 500, .message = made.message(), .type = "server_error"};
    embedder_ = std::move(*made);
  }
  return embedder_.get();
}

std::variant<Embeddings, ApiError> LocalProvider::embed(const EmbeddingRequest& request) {
  auto made = embedder();
  if (auto* e = std::get_if<ApiError>(&made)) return *e;
  engine::Embedder& embedder = *std::get<engine::Embedder*>(made);
  if (request.dimensions != 0 && request.dimensions != embedder.n_embd()) {
    return ApiError{.message = fmt::format("'dimensions' {}: the model '{}' gives vectors of {} only (it was not trained "
                                           "for shorter ones)", request.dimensions, info_.id, embedder.n_embd()),
                    .param = "dimensions"};
  }
  std::vector<std::vector<int32_t>> inputs;
  for (const std::string& text : request.texts) inputs.push_back(local_.tokenizer->tokenize(text, {.add_special = true}));
  for (const auto& ids : request.token_inputs) inputs.push_back(ids);
  Embeddings out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto n = static_cast<int64_t>(inputs[i].size());
    if (n == 0) return ApiError{.message = fmt::format("input {} gives no tokens", i), .param = "input"};
    if (n > embedder.n_ctx()) {
      return ApiError{.message = fmt::format("input {} has {} tokens, more than the context of {}", i, n, embedder.n_ctx()),
                      .param = "input", .code = "context_length_exceeded"};
    }
    out.prompt_tokens += n;
  }
  auto vectors = embedder.embed(std::span<const std::vector<int32_t>>(inputs));
  if (!vectors) return ApiError{.status = 500, .message = vectors.message(), .type = "server_error"};
  out.vectors = std::move(*vectors);
  return out;
}

}  // namespace owl::router
