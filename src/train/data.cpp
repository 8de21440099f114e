#include "train/data.h"

#include <algorithm>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "template/chat.h"

namespace owl::train {

using core::make_error;

int64_t Example::n_targets() const { return std::count(target.begin(), target.end(), uint8_t{1}); }

namespace {

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

struct Line {
  const std::string& path;
  int64_t number;
  std::string where(std::string_view field) const {
    return field.empty() ? fmt::format("{}:{}", path, number) : fmt::format("{}:{}: '{}'", path, number, field);
  }
};

const std::string* string_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

// The model's own convention: BOS where it adds one, the text's control tokens as their ids.
std::vector<int32_t> tokens_of(const tokenizer::Tokenizer& tok, std::string_view text, bool add_special) {
  return tok.tokenize(text, {.add_special = add_special, .parse_special = true});
}

core::Status from_messages(const nlohmann::json& messages, const Line& line, const tokenizer::Tokenizer& tok,
                           const TemplateSource& source, Example& ex) {
  if (!messages.is_array() || messages.empty()) return make_error("{} must be a non-empty array", line.where("messages"));
  bool any_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const nlohmann::json& m = messages[i];
    const std::string field = fmt::format("messages[{}]", i);
    if (!m.is_object()) return make_error("{} is not an object", line.where(field));
    const std::string* role = string_field(m, "role");
    if (role == nullptr) return make_error("{} has no string 'role'", line.where(field));
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool") {
      return make_error("{}: role '{}' is not system, user, assistant or tool", line.where(field), *role);
    }
    if (string_field(m, "content") == nullptr) return make_error("{} has no string 'content'", line.where(field));
    any_assistant |= *role == "assistant";
  }
  if (!any_assistant) return make_error("{}: no assistant message to learn from", line.where("messages"));
  auto chat_template = source();
  if (!chat_template) return chat_template.error();
  const std::string bos = tok.bos() >= 0 ? std::string(tok.token_to_piece(tok.bos(), true)) : std::string();
  tmpl::ChatOptions options;
  options.bos_token = bos;
  options.eos_token = tok.eos() >= 0 ? std::string(tok.token_to_piece(tok.eos(), true)) : std::string();
  nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(messages.dump());
  auto render = [&](size_t n, bool generation_prompt) -> core::Result<std::vector<int32_t>> {
    options.add_generation_prompt = generation_prompt;
    nlohmann::ordered_json part = nlohmann::ordered_json::array();
    for (size_t i = 0; i < n; ++i) part.push_back(ordered[i]);
    auto text = tmpl::render_chat(**chat_template, part, options);
    if (!text) return make_error("{}: the chat template failed: {}", line.where("messages"), text.message());
    const bool has_bos = !bos.empty() && text->rfind(bos, 0) == 0;
    return tokens_of(tok, *text, !has_bos);
  };
  auto full = render(messages.size(), false);
  if (!full) return full.error();
  ex.tokens = std::move(*full);
  ex.target.assign(ex.tokens.size(), 0);
  // Assistant turn i is what render(i + 1) adds to render(i, generation prompt).
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i]["role"] != "assistant") continue;
    auto before = render(i, true);
    if (!before) return before.error();
    auto after = render(i + 1, false);
    if (!after) return after.error();
    const size_t begin = common_prefix(*before, ex.tokens);
    const size_t end = common_prefix(*after, ex.tokens);
    for (size_t t = begin; t < end; ++t) ex.target[t] = 1;
  }
  return {};
}

// prompt + completion tokenized as one text (as a generation continues it); the targets start
// where its tokens leave those of the prompt alone.
void from_prompt(const tokenizer::Tokenizer& tok, const std::string& prompt, const std::string& completion,
                 bool train_on_prompt, Example& ex) {
  ex.tokens = tokens_of(tok, prompt + completion, true);
  const size_t begin = train_on_prompt ? 0 : common_prefix(tokens_of(tok, prompt, true), ex.tokens);
  if (tok.eos() >= 0 && (ex.tokens.empty() || ex.tokens.back() != tok.eos())) ex.tokens.push_back(tok.eos());
  ex.target.assign(ex.tokens.size(), 0);
  for (size_t t = begin; t < ex.tokens.size(); ++t) ex.target[t] = 1;
  if (!ex.tokens.empty() && ex.tokens[0] == tok.bos()) ex.target[0] = 0;  // BOS is given, never predicted
}

}  // namespace

core::Result<Dataset> load_dataset(const std::string& path, const tokenizer::Tokenizer& tok,
                                   const TemplateSource& chat_template, const DataOptions& options) {
  auto text = core::read_file(path);
  if (!text) return text.error();
  return parse_dataset(*text, path, tok, chat_template, options);
}

core::Result<Dataset> parse_dataset(std::string_view text, const std::string& path, const tokenizer::Tokenizer& tok,
                                    const TemplateSource& chat_template, const DataOptions& options) {
  Dataset data;
  std::string_view rest(text);
  for (int64_t number = 1; !rest.empty(); ++number) {
    const size_t nl = rest.find('\n');
    std::string_view raw = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (raw.find_first_not_of(" \t") == std::string_view::npos) continue;
    const Line line{path, number};
    nlohmann::json j = nlohmann::json::parse(raw, nullptr, false);
    if (j.is_discarded()) return make_error("{}: not a JSON value", line.where(""));
    if (!j.is_object()) return make_error("{}: an example is a JSON object, not {}", line.where(""), j.type_name());
    Example ex;
    ex.line = number;
    if (j.contains("messages")) {
      OWL_TRY(from_messages(j["messages"], line, tok, chat_template, ex));
    } else if (j.contains("prompt") || j.contains("completion")) {
      const std::string* prompt = string_field(j, "prompt");
      const std::string* completion = string_field(j, "completion");
      if (prompt == nullptr) return make_error("{} must be a string", line.where("prompt"));
      if (completion == nullptr) return make_error("{} must be a string", line.where("completion"));
      if (completion->empty()) return make_error("{} is empty: nothing to learn", line.where("completion"));
      from_prompt(tok, *prompt, *completion, options.train_on_prompt, ex);
    } else if (j.contains("text")) {
      const std::string* t = string_field(j, "text");
      if (t == nullptr || t->empty()) return make_error("{} must be a non-empty string", line.where("text"));
      from_prompt(tok, "", *t, true, ex);
    } else {
      return make_error("{}: an example needs 'messages', 'prompt' and 'completion', or 'text'", line.where(""));
    }
    if (static_cast<int64_t>(ex.tokens.size()) > options.n_ctx) {
      if (!options.truncate) {
        return make_error("{}: the example is {} tokens, longer than --ctx {} (--truncate cuts such examples)",
                          line.where(""), ex.tokens.size(), options.n_ctx);
      }
      ex.tokens.resize(static_cast<size_t>(options.n_ctx));
      ex.target.resize(static_cast<size_t>(options.n_ctx));
      ++data.n_truncated;
    }
    // Token t is predicted from position t - 1: the first token never is.
    if (!ex.target.empty()) ex.target[0] = 0;
    if (ex.n_targets() == 0) return make_error("{}: no token to learn (after truncation to {})", line.where(""), options.n_ctx);
    data.n_tokens += static_cast<int64_t>(ex.tokens.size());
    data.n_targets += ex.n_targets();
    data.examples.push_back(std::move(ex));
  }
  if (data.examples.empty()) return make_error("{}: no examples", path);
  return data;
}

}  // namespace owl::train
