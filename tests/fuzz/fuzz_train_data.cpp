// libFuzzer target for owl finetune's untrusted input: training examples (JSONL), tokenized by
// the embedded model's tokenizer, messages rendered through chatml. Parsing must never crash
// or hang, and an example that parses has one target flag per token and something to learn.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "template/template.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

namespace {

constexpr const char* kChatml =
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct Setup {
  std::optional<owl::tokenizer::Tokenizer> tok;
  std::optional<owl::tmpl::Template> chat;
  Setup() {
    auto t = owl::tokenizer::Tokenizer::load(std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf");
    auto c = owl::tmpl::Template::parse(kChatml);
    if (!t.ok() || !c.ok()) std::abort();
    tok.emplace(std::move(*t));
    chat.emplace(std::move(*c));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Setup setup;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  owl::train::TemplateSource source = [&]() -> owl::core::Result<const owl::tmpl::Template*> { return &*setup.chat; };
  for (const bool truncate : {false, true}) {
    const owl::train::DataOptions options{.n_ctx = 64, .truncate = truncate, .train_on_prompt = size % 2 == 1};
    auto d = owl::train::parse_dataset(text, "fuzz.jsonl", *setup.tok, source, options);
    if (!d.ok()) continue;
    for (const owl::train::Example& ex : d->examples) {
      if (ex.tokens.size() != ex.target.size() || ex.tokens.size() > 64 || ex.n_targets() == 0) std::abort();
    }
  }
  return 0;
}
