// Loading: GGUF metadata -> VocabSpec -> Tokenizer::Impl, with the defaults and per-model fixes of
// llama.cpp's llama_vocab::impl::load (src/llama-vocab.cpp), in the same order.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <initializer_list>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/keys.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace owl::tokenizer {

namespace keys = gguf::keys;

using core::make_error;
using core::Result;

namespace {

// GGUF tokenizer.ggml.token_type values (llama_token_type).
enum GgufTokenType : int32_t {
  kTypeUndefined = 0, kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3,
  kTypeUserDefined = 4, kTypeUnused = 5, kTypeByte = 6,
};

uint32_t attr_of_type(int32_t type) {
  switch (type) {
    case kTypeUnknown: return kAttrUnknown;
    case kTypeUnused: return kAttrUnused;
    case kTypeNormal: return kAttrNormal;
    case kTypeControl: return kAttrControl;
    case kTypeUserDefined: return kAttrUserDefined;
    case kTypeByte: return kAttrByte;
    default: return kAttrUndefined;
  }
}

Result<std::optional<int64_t>> read_optional_int(const gguf::GgufFile& file, std::string_view key) {
  if (file.find(key) == nullptr) return std::optional<int64_t>{};
  Result<int64_t> v = file.get_int(key);
  if (!v.ok()) return v.error();
  return std::optional<int64_t>(*v);
}

Result<std::optional<bool>> read_optional_bool(const gguf::GgufFile& file, std::string_view key) {
  if (file.find(key) == nullptr) return std::optional<bool>{};
  Result<bool> v = file.get_bool(key);
  if (!v.ok()) return v.error();
  return std::optional<bool>(*v);
}

}  // namespace

Result<VocabSpec> read_vocab_spec(const gguf::GgufFile& file) {
  VocabSpec spec;
  Result<std::string> model = file.get_string(keys::kTokenizerModel);
  if (!model.ok()) return model.error();
  spec.model = std::move(*model);
  Result<std::string> pre = file.get_string_or(keys::kTokenizerPre, "");
  if (!pre.ok()) return pre.error();
  spec.pre = std::move(*pre);
  Result<std::string> name = file.get_string_or(keys::kGeneralName, "");
  spec.name = name.ok() ? std::move(*name) : std::string();
  Result<std::string> arch = file.get_string_or(keys::kGeneralArchitecture, "");
  spec.architecture = arch.ok() ? std::move(*arch) : std::string();

  Result<std::vector<std::string>> tokens = file.get_string_array(keys::kTokenizerTokens);
  if (!tokens.ok()) return tokens.error();
  spec.tokens = std::move(*tokens);
  if (file.find(keys::kTokenizerScores) != nullptr) {
    Result<std::vector<double>> scores = file.get_float_array(keys::kTokenizerScores);
    if (!scores.ok()) return scores.error();
    spec.scores.assign(scores->begin(), scores->end());
  }
  if (file.find(keys::kTokenizerTokenType) != nullptr) {
    Result<std::vector<int64_t>> types = file.get_int_array(keys::kTokenizerTokenType);
    if (!types.ok()) return types.error();
    spec.token_types.reserve(types->size());
    for (int64_t t : *types) spec.token_types.push_back(static_cast<int32_t>(std::clamp<int64_t>(t, -1, 1000)));
  }
  if (file.find(keys::kTokenizerMerges) != nullptr) {
    Result<std::vector<std::string>> merges = file.get_string_array(keys::kTokenizerMerges);
    if (!merges.ok()) return merges.error();
    spec.merges = std::move(*merges);
  }

  const std::pair<const char*, std::optional<int64_t>*> ids[] = {
      {keys::kTokenizerBosId, &spec.bos},       {keys::kTokenizerEosId, &spec.eos},
      {keys::kTokenizerEotId, &spec.eot},       {keys::kTokenizerEomId, &spec.eom},
      {keys::kTokenizerUnknownId, &spec.unk},   {keys::kTokenizerSeparatorId, &spec.sep},
      {keys::kTokenizerPaddingId, &spec.pad},   {keys::kTokenizerMaskId, &spec.mask},
      {keys::kTokenizerFimPreId, &spec.fim_pre}, {keys::kTokenizerFimSufId, &spec.fim_suf},
      {keys::kTokenizerFimMidId, &spec.fim_mid}, {keys::kTokenizerFimPadId, &spec.fim_pad},
      {keys::kTokenizerFimRepId, &spec.fim_rep}, {keys::kTokenizerFimSepId, &spec.fim_sep},
      // deprecated names of the FIM ids
      {keys::kTokenizerPrefixId, &spec.fim_pre},  {keys::kTokenizerSuffixId, &spec.fim_suf},
      {keys::kTokenizerMiddleId, &spec.fim_mid},
  };
  for (const auto& [key, field] : ids) {
    Result<std::optional<int64_t>> v = read_optional_int(file, key);
    if (!v.ok()) return v.error();
    if (v->has_value()) *field = *v;
  }
  const std::pair<const char*, std::optional<bool>*> flags[] = {
      {keys::kTokenizerAddBos, &spec.add_bos},
      {keys::kTokenizerAddEos, &spec.add_eos},
      {keys::kTokenizerAddSpacePrefix, &spec.add_space_prefix},
  };
  for (const auto& [key, field] : flags) {
    Result<std::optional<bool>> v = read_optional_bool(file, key);
    if (!v.ok()) return v.error();
    *field = *v;
  }
  return spec;
}

namespace {

using Impl = Tokenizer::Impl;

TokenId find(const Impl& impl, std::string_view text) { return impl.token_map.find(text); }

void add_attr(Impl& impl, TokenId id, uint32_t attr, bool on) {
  uint32_t& a = impl.tokens[static_cast<size_t>(id)].attr;
  a = on ? (a | attr) : (a & ~attr);
}

Result<void> load_tokens(Impl& impl, const VocabSpec& spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) return make_error("tokenizer: tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)) {
    return make_error("tokenizer: tokenizer.ggml.tokens has {} entries, too many", n);
  }
  if (!spec.scores.empty() && spec.scores.size() < n) {
    return make_error("tokenizer: tokenizer.ggml.scores has {} entries for {} tokens", spec.scores.size(), n);
  }
  if (!spec.token_types.empty() && spec.token_types.size() < n) {
    return make_error("tokenizer: tokenizer.ggml.token_type has {} entries for {} tokens",
                      spec.token_types.size(), n);
  }
  size_t total = 0;
  for (const std::string& t : spec.tokens) total += t.empty() ? 24 : t.size();
  if (total > std::numeric_limits<uint32_t>::max()) return make_error("tokenizer: token texts too large ({} bytes)", total);
  impl.text_arena.reserve(total);
  impl.tokens.resize(n);
  for (size_t i = 0; i < n; ++i) {
    // llama.cpp renames an empty token so that it can still be looked up.
    const std::string text = spec.tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : spec.tokens[i];
    TokenData& t = impl.tokens[i];
    t.text_offset = static_cast<uint32_t>(impl.text_arena.size());
    t.text_size = static_cast<uint32_t>(text.size());
    t.score = spec.scores.empty() ? 0.0f : spec.scores[i];
    t.attr = spec.token_types.empty() ? kAttrNormal : attr_of_type(spec.token_types[i]);
    impl.text_arena += text;
    impl.max_token_len = std::max(impl.max_token_len, t.text_size);
  }
  impl.token_map.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const TokenId id = static_cast<TokenId>(i);
    const TokenId stored = impl.token_map.insert(impl.text(id), id);
    if (stored != id) {
      return make_error("tokenizer: duplicate token in vocabulary: '{}' has ids {} and {}", impl.text(id), stored, id);
    }
  }
  return {};
}

// The id a metadata key sets, if it is inside the vocabulary (llama.cpp ignores it otherwise).
void set_special(TokenId& id, const std::optional<int64_t>& value, int32_t n_vocab) {
  if (id >= n_vocab) id = kNoToken;
  if (value && *value >= 0 && *value < n_vocab) id = static_cast<TokenId>(*value);
}

void set_special_ids(SpecialTokens& s, const VocabSpec& spec, int32_t n_vocab) {
  const std::pair<TokenId*, const std::optional<int64_t>*> fields[] = {
      {&s.bos, &spec.bos},         {&s.eos, &spec.eos},         {&s.eot, &spec.eot},
      {&s.eom, &spec.eom},         {&s.unk, &spec.unk},         {&s.sep, &spec.sep},
      {&s.pad, &spec.pad},         {&s.mask, &spec.mask},       {&s.fim_pre, &spec.fim_pre},
      {&s.fim_suf, &spec.fim_suf}, {&s.fim_mid, &spec.fim_mid}, {&s.fim_pad, &spec.fim_pad},
      {&s.fim_rep, &spec.fim_rep}, {&s.fim_sep, &spec.fim_sep},
  };
  for (const auto& [id, value] : fields) set_special(*id, *value, n_vocab);
}

bool text_in(std::string_view text, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), text) != list.end();
}

// llama.cpp finds tokens the conversion did not label by their text and makes them control tokens.
void detect_by_text(Impl& impl) {
  SpecialTokens& s = impl.special;
  struct Rule {
    TokenId* id;
    std::initializer_list<std::string_view> texts;
  };
  const Rule rules[] = {
      {&s.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
                "_<EOT>", "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                "<end_of_utterance>"}},
      {&s.eom, {"<|eom_id|>"}},
      {&s.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
                    "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
      {&s.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
                    "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"}},
      {&s.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>",
                    "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
      {&s.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {&s.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {&s.fim_sep, {"<|file_sep|>"}},
  };
  for (const Rule& rule : rules) {
    if (*rule.id != kNoToken) continue;
    for (size_t i = 0; i < impl.tokens.size(); ++i) {
      if (!text_in(impl.text(static_cast<TokenId>(i)), rule.texts)) continue;
      *rule.id = static_cast<TokenId>(i);
      add_attr(impl, *rule.id, kAttrControl, true);
      break;
    }
  }
  // Control tokens named "unused" are unused.
  for (size_t i = 0; i < impl.tokens.size(); ++i) {
    TokenData& t = impl.tokens[i];
    if ((t.attr & kAttrControl) && impl.text(static_cast<TokenId>(i)).find("unused") != std::string_view::npos) {
      t.attr |= kAttrUnused;
    }
  }
}

void mark_end_of_generation(Impl& impl) {
  const size_t n = impl.tokens.size();
  SpecialTokens& s = impl.special;
  impl.eog.assign(n, 0);
  for (TokenId id : {s.fim_pad, s.fim_rep, s.fim_sep}) {
    if (id != kNoToken) impl.eog[static_cast<size_t>(id)] = 1;
  }
  static const std::initializer_list<std::string_view> kEogTexts = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
      "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
      "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
      "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~["};
  for (size_t i = 0; i < n; ++i) {
    if (!text_in(impl.text(static_cast<TokenId>(i)), kEogTexts)) continue;
    impl.eog[i] = 1;
    impl.tokens[i].attr |= kAttrControl;
  }
  // gpt-oss: these are always printed.
  for (std::string_view text : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    const TokenId id = find(impl, text);
    if (id != kNoToken) impl.tokens[static_cast<size_t>(id)].attr = kAttrUserDefined;
  }
  for (TokenId id : {s.eos, s.eot, s.eom}) {
    if (id != kNoToken) impl.eog[static_cast<size_t>(id)] = 1;
  }
  const auto eog_with = [&](std::string_view text) {
    const TokenId id = find(impl, text);
    return id != kNoToken && impl.eog[static_cast<size_t>(id)] ? id : kNoToken;
  };
  // o200k_harmony and solar-open: "<|end|>" ends a message, not the generation.
  const TokenId end = eog_with("<|end|>");
  const bool has_call = eog_with("<|call|>") != kNoToken || eog_with("<|calls|>") != kNoToken;
  if (end != kNoToken && has_call && (eog_with("<|return|>") != kNoToken || eog_with("<|flush|>") != kNoToken)) {
    impl.eog[static_cast<size_t>(end)] = 0;
    impl.tokens[static_cast<size_t>(end)].attr = kAttrUserDefined;
  }
  // gemma4 and paddleocr: "</s>" is not an end of generation.
  const TokenId s_end = eog_with("</s>");
  if (s_end != kNoToken && eog_with("<|tool_response>") != kNoToken) {
    impl.eog[static_cast<size_t>(s_end)] = 0;
    impl.tokens[static_cast<size_t>(s_end)].attr = kAttrNormal;
  }
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Attributes llama.cpp sets by model name (they are not in GGUF files).
void apply_model_fixes(Impl& impl, const VocabSpec& spec) {
  const std::string name = lower(spec.name);
  const auto contains = [](const std::string& s, std::initializer_list<std::string_view> parts) {
    for (std::string_view p : parts) {
      if (s.find(p) != std::string::npos) return true;
    }
    return false;
  };
  const auto set = [&](std::string_view text, uint32_t attr, bool on) {
    const TokenId id = find(impl, text);
    if (id != kNoToken) add_attr(impl, id, attr, on);
  };
  if (contains(spec.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains(spec.architecture, {"nomic-bert-moe", "jina-bert-v3"})) {
    set("<mask>", kAttrLstrip, true);
  } else if (contains(name, {"phi-3", "phi3"})) {
    for (TokenData& t : impl.tokens) {
      if (t.attr & (kAttrControl | kAttrUserDefined | kAttrUnknown)) t.attr |= kAttrRstrip;
    }
    set("</s>", kAttrRstrip, true);
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) set(text, kAttrRstrip, false);
  } else if (contains(name, {"modern-bert"})) {
    set("[MASK]", kAttrLstrip, true);
  }
}

uint8_t byte_of_byte_token(std::string_view text) {
  // "<0xNN>": llama.cpp reads the two characters after "<0x" with strtol(.., 16).
  unsigned value = 0;
  for (size_t i = 3; i < std::min<size_t>(text.size(), 5); ++i) {
    const char c = text[i];
    const int digit = (c >= '0' && c <= '9') ? c - '0'
                      : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                      : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (digit < 0) break;
    value = value * 16 + static_cast<unsigned>(digit);
  }
  return static_cast<uint8_t>(value);
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// token_to_piece(id, special = true) for every token (llama.cpp's cache_token_to_piece).
void build_pieces(Impl& impl) {
  const size_t n = impl.tokens.size();
  impl.piece_offsets.resize(n + 1);
  std::string piece;
  for (size_t i = 0; i < n; ++i) {
    impl.piece_offsets[i] = static_cast<uint32_t>(impl.piece_arena.size());
    const uint32_t attr = impl.tokens[i].attr;
    const std::string_view text = impl.text(static_cast<TokenId>(i));
    piece.clear();
    if (attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) {
      piece = text;
    } else if (attr & kAttrNormal) {
      if (impl.escape_whitespaces) {
        piece = text;
        replace_all(piece, kSpaceMarker, " ");
      } else {
        decode_byte_level(text, piece);
      }
    } else if (attr & kAttrByte) {
      piece.push_back(static_cast<char>(byte_of_byte_token(text)));
    }
    impl.piece_arena += piece;
  }
  impl.piece_offsets[n] = static_cast<uint32_t>(impl.piece_arena.size());
}

void build_byte_tokens(Impl& impl) {
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    TokenId id = find(impl, std::string_view(name, 6));
    if (id == kNoToken) {
      const char c = static_cast<char>(b);
      id = find(impl, std::string_view(&c, 1));
    }
    impl.byte_tokens[static_cast<size_t>(b)] = id;
  }
}

}  // namespace

Result<std::shared_ptr<Impl>> make_impl(VocabSpec spec) {
  auto impl = std::make_shared<Impl>();
  SpecialTokens& s = impl->special;
  impl->model = spec.model;
  PreTokenizerSpec pre_spec;
  if (spec.model == "llama") {
    impl->type = VocabType::kSpm;
    s.bos = 1;
    s.eos = 2;
    s.unk = 0;
    impl->pre = "default";
    impl->add_space_prefix = true;
    impl->add_bos = true;
    impl->escape_whitespaces = true;
  } else if (spec.model == "gpt2" || spec.model == "gemma4") {
    impl->type = VocabType::kBpe;
    if (spec.model == "gpt2") {
      s.bos = 11;
      s.eos = 11;
    } else {
      spec.pre = "gemma4";
    }
    if (spec.merges.empty()) return make_error("tokenizer: tokenizer.ggml.merges is missing (model '{}')", spec.model);
    Result<PreTokenizerSpec> found = find_pre_tokenizer(spec.pre);
    if (!found.ok()) return found.error();
    pre_spec = std::move(*found);
    impl->pre = pre_spec.name;
    impl->clean_spaces = pre_spec.clean_spaces;
    impl->add_bos = pre_spec.add_bos;
    impl->escape_whitespaces = pre_spec.escape_whitespaces;
    if (pre_spec.no_bos) s.bos = kNoToken;
  } else {
    return make_error("tokenizer: tokenizer.ggml.model '{}' is not supported (owl reads 'llama' and 'gpt2')", spec.model);
  }
  if (spec.add_space_prefix) impl->add_space_prefix = *spec.add_space_prefix;

  Result<void> loaded = load_tokens(*impl, spec);
  if (!loaded.ok()) return loaded.error();
  const int32_t n_vocab = static_cast<int32_t>(impl->tokens.size());

  set_special_ids(s, spec, n_vocab);
  if (spec.add_bos) impl->add_bos = *spec.add_bos;
  if (spec.add_eos) impl->add_eos = *spec.add_eos;
  if (spec.model == "gemma4") impl->add_bos = true;
  if (impl->add_bos && s.bos == kNoToken) {
    return make_error("tokenizer: tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
  }
  if (impl->add_eos && s.eos == kNoToken) {
    return make_error("tokenizer: tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
  }

  detect_by_text(*impl);
  mark_end_of_generation(*impl);
  apply_model_fixes(*impl, spec);
  impl->specials.build(impl->tokens, impl->text_arena);
  build_pieces(*impl);
  build_byte_tokens(*impl);
  if (impl->type == VocabType::kSpm) impl->spm_words = spm_merges_stay_in_words(*impl);

  if (impl->type == VocabType::kBpe) {
    Result<PreTokenizer> pt = PreTokenizer::make(pre_spec);
    if (!pt.ok()) return pt.error();
    impl->pretokenizer.emplace(std::move(*pt));
    BpeModel::Options options{.byte_encode = pre_spec.byte_encode,
                              .ignore_merges = pre_spec.ignore_merges,
                              .newline_words = pre_spec.name == "gemma4" || pre_spec.name == "granite-embed-multi-311m"};
    Result<std::unique_ptr<BpeModel>> bpe =
        BpeModel::make(impl->text_arena, impl->tokens, impl->token_map, spec.merges, options);
    if (!bpe.ok()) return bpe.error();
    impl->bpe = std::move(*bpe);
  }
  return impl;
}

}  // namespace owl::tokenizer
