// Tokenizer: the public entry points (tokenize, pieces, detokenize, streaming) on top of the
// vocabulary state built in vocab.cpp. The order of steps is llama.cpp's llama_vocab::impl::
// tokenize / detokenize (src/llama-vocab.cpp).
#include "tokenizer/tokenizer.h"

#include "gguf/gguf.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace owl::tokenizer {

using core::Result;

Result<Tokenizer> Tokenizer::make(VocabSpec spec) {
  Result<std::shared_ptr<Impl>> built = make_impl(std::move(spec));
  if (!built.ok()) return built.error();
  std::shared_ptr<Impl> impl = std::move(*built);
  // The newline token: SPM's byte token for '\n'; BPE's first token of "\n".
  TokenId nl = kNoToken;
  if (impl->type == VocabType::kSpm) {
    nl = impl->byte_tokens['\n'];
  } else {
    const std::vector<TokenId> ids = Tokenizer(impl).tokenize("\n", {.add_special = false});
    if (!ids.empty()) nl = ids[0];
  }
  impl->special.nl = nl != kNoToken ? nl : impl->special.pad;
  return Tokenizer(std::move(impl));
}

Result<Tokenizer> Tokenizer::load(const gguf::GgufFile& file) {
  Result<VocabSpec> spec = read_vocab_spec(file);
  if (!spec.ok()) return spec.error();
  return make(std::move(*spec));
}

Result<Tokenizer> Tokenizer::load(const std::string& gguf_path) {
  Result<gguf::GgufFile> file = gguf::GgufFile::open(gguf_path);
  if (!file.ok()) return file.error();
  return load(*file);
}

namespace {

struct Buffers {
  std::vector<Fragment> fragments;
  std::string text;        // a piece after escaping / normalization
  std::string masked;      // the same with surrogates masked, for PCRE2
  std::vector<Span> words;
  std::vector<Span> spans;
  SpmScratch spm;
  BpeModel::Scratch bpe;
};

// Appends `raw` with each ' ' written as U+2581.
void append_escaped(std::string_view raw, std::string& out) {
  for (char c : raw) {
    if (c == ' ') {
      out += kSpaceMarker;
    } else {
      out.push_back(c);
    }
  }
}

void tokenize_bpe_piece(const Tokenizer::Impl& impl, std::string_view piece, std::vector<TokenId>& out, Buffers& b) {
  std::string_view text = piece;
  if (impl.escape_whitespaces) {
    b.text.clear();
    append_escaped(piece, b.text);
    text = b.text;
  }
  // llama.cpp reads the piece as code points (a malformed byte is U+FFFD) before splitting.
  std::string normalized;
  if (normalize_for_bpe(text, normalized)) {
    b.text = std::move(normalized);
    text = b.text;
  }
  std::string_view for_regex = text;
  if (mask_surrogates(text, b.masked)) for_regex = b.masked;
  b.words.clear();
  impl.pretokenizer->split(for_regex, b.words, b.spans);
  for (const Span& w : b.words) impl.bpe->encode_word(text.substr(w.begin, w.end - w.begin), out, b.bpe);
}

}  // namespace

void Tokenizer::tokenize(std::string_view text, std::vector<TokenId>& out, const TokenizeOptions& options) const {
  const Impl& impl = *impl_;
  Buffers b;
  impl.specials.partition(text, options.parse_special, b.fragments);
  const bool add_bos = options.add_special && impl.add_bos && impl.special.bos != kNoToken;
  const bool add_eos = options.add_special && impl.add_eos && impl.special.eos != kNoToken;
  if (add_bos) out.push_back(impl.special.bos);
  // SPM puts a space before the text at the start and after each special token.
  bool prev_special = true;
  for (const Fragment& f : b.fragments) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const std::string_view raw = text.substr(f.begin, f.end - f.begin);
    if (impl.type == VocabType::kSpm) {
      b.text.clear();
      if (impl.add_space_prefix && prev_special) b.text += kSpaceMarker;
      append_escaped(raw, b.text);
      tokenize_spm(impl, b.text, out, b.spm);
    } else {
      tokenize_bpe_piece(impl, raw, out, b);
    }
    prev_special = false;
  }
  if (add_eos) out.push_back(impl.special.eos);
}

std::vector<TokenId> Tokenizer::tokenize(std::string_view text, const TokenizeOptions& options) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  tokenize(text, out, options);
  return out;
}

std::string_view Tokenizer::token_to_piece(TokenId id, bool special) const {
  if (!valid(id)) return {};
  if (!special && (impl_->tokens[static_cast<size_t>(id)].attr & (kAttrUnknown | kAttrControl))) return {};
  return impl_->piece(id);
}

namespace {

// llama.cpp's clean_up_tokenization_spaces, three passes over the text:
// " ?" " !" " ." " ," lose the space; " ' " loses both spaces; " 's" " 'm" " 're" " 've" lose it.
void clean_spaces(std::string& s) {
  if (s.empty()) return;
  std::string src = s;
  s.assign(1, src[0]);
  for (size_t i = 1; i < src.size(); ++i) {
    const char x = src[i];
    if (src[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) s.pop_back();
    s.push_back(x);
  }
  src = s;
  s.assign(1, src[0]);
  for (size_t i = 1; i < src.size(); ++i) {
    const char x = src[i];
    if (x == '\'' && i + 1 < src.size() && src[i - 1] == ' ' && src[i + 1] == ' ') {
      s.pop_back();
      src[++i] = '\0';  // llama.cpp overwrites the next space in place and skips it
    }
    s.push_back(x);
  }
  src = s;
  s.assign(1, src[0]);
  for (size_t i = 1; i < src.size(); ++i) {
    const char x = src[i];
    if (src[i - 1] == ' ' && x == '\'' && i + 1 < src.size()) {
      const char x1 = src[i + 1];
      if (x1 == 's' || x1 == 'm') {
        s.pop_back();
      } else if (x1 != 't' && x1 != 'd' && i + 2 < src.size()) {
        const char x2 = src[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) s.pop_back();
      }
    }
    s.push_back(x);
  }
}

}  // namespace

void Tokenizer::detokenize(std::span<const TokenId> ids, std::string& out, const DetokenizeOptions& options) const {
  const Impl& impl = *impl_;
  bool remove_space = impl.add_space_prefix;
  if (options.remove_special && impl.add_bos && !ids.empty() && ids.front() == impl.special.bos) {
    remove_space = false;  // llama.cpp keeps the space after a removed BOS
    ids = ids.subspan(1);
  }
  if (options.remove_special && impl.add_eos && !ids.empty() && ids.back() == impl.special.eos) {
    ids = ids.first(ids.size() - 1);
  }
  std::string text;
  for (TokenId id : ids) {
    std::string_view piece = token_to_piece(id, options.unparse_special);
    if (remove_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    remove_space = false;
    text += piece;
  }
  if (impl.clean_spaces) clean_spaces(text);
  out += text;
}

std::string Tokenizer::detokenize(std::span<const TokenId> ids, const DetokenizeOptions& options) const {
  std::string out;
  detokenize(ids, out, options);
  return out;
}

VocabType Tokenizer::type() const { return impl_->type; }
const std::string& Tokenizer::model() const { return impl_->model; }
const std::string& Tokenizer::pre() const { return impl_->pre; }
int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(impl_->tokens.size()); }
const SpecialTokens& Tokenizer::special() const { return impl_->special; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }
bool Tokenizer::is_eog(TokenId id) const { return valid(id) && impl_->eog[static_cast<size_t>(id)] != 0; }
std::string_view Tokenizer::token_text(TokenId id) const { return valid(id) ? impl_->text(id) : std::string_view(); }
float Tokenizer::token_score(TokenId id) const {
  return valid(id) ? impl_->tokens[static_cast<size_t>(id)].score : 0.0f;
}
uint32_t Tokenizer::token_attr(TokenId id) const {
  return valid(id) ? impl_->tokens[static_cast<size_t>(id)].attr : kAttrUndefined;
}
TokenId Tokenizer::find_token(std::string_view text) const { return impl_->token_map.find(text); }

size_t complete_utf8_prefix(std::string_view text) {
  const size_t n = text.size();
  for (size_t k = 1; k <= 4 && k <= n; ++k) {
    const uint8_t b = static_cast<uint8_t>(text[n - k]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
    return need > k ? n - k : n;
  }
  return n;  // only continuation bytes at the end: malformed, nothing to wait for
}

Detokenizer::Detokenizer(Tokenizer tokenizer, Options options)
    : tokenizer_(std::move(tokenizer)), options_(options) {}

std::string_view Detokenizer::push(TokenId id) {
  buffer_.erase(0, emitted_);
  emitted_ = 0;
  std::string_view piece = tokenizer_.token_to_piece(id, options_.special);
  if (first_ && options_.strip_leading_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
  first_ = false;
  buffer_ += piece;
  emitted_ = complete_utf8_prefix(buffer_);
  return std::string_view(buffer_).substr(0, emitted_);
}

std::string Detokenizer::finish() {
  std::string rest = buffer_.substr(emitted_);
  buffer_.clear();
  emitted_ = 0;
  first_ = true;
  return rest;
}

}  // namespace owl::tokenizer
