#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <initializer_list>

namespace owl::tokenizer {

using core::make_error;
using core::Result;

namespace {

// The regexes as llama.cpp writes them (src/llama-vocab.cpp, llm_tokenizer_bpe), unescaped.
// Literal non-ASCII ranges are written as \x{...}.
constexpr std::string_view kContractions =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))";
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr std::string_view kLlama3Tail =
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Tail =
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen35Tail =
    R"(|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kJais2Tail =
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S))"
    R"(|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S))"
    R"(|\s{1,2}(?!\S)|\s{1})";
constexpr std::string_view kCjkDeepseek = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr std::string_view kCjkKana = R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)";
constexpr std::string_view kDeepseek3 =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+)"
    R"(| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kSpark25 =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+)"
    R"(| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+)";
constexpr std::string_view kPoro =
    R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";
// Tekken and GPT-4o: an upper-then-lower letter run, with llama.cpp's adaptation of
// [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] to "a letter that is not a-z" (and lower to "not A-Z").
constexpr std::string_view kUpperThenLower =
    R"([^\r\n\p{L}\p{N}]?(?:(?=[\p{L}])[^a-z])*(?:(?=[\p{L}])[^A-Z])+)";
constexpr std::string_view kUpperRunThenLower =
    R"([^\r\n\p{L}\p{N}]?(?:(?=[\p{L}])[^a-z])+(?:(?=[\p{L}])[^A-Z])*)";
constexpr std::string_view kWordTail = R"(| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGraniteMulti =
    R"([^\r\n\p{L}\p{N}]?(?:(?=[\p{L}\p{M}])[^a-z])*(?:(?=[\p{L}\p{M}])[^A-Z])+)";
constexpr std::string_view kGraniteMultiRun =
    R"([^\r\n\p{L}\p{N}]?(?:(?=[\p{L}\p{M}])[^a-z])+(?:(?=[\p{L}\p{M}])[^A-Z])*)";

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (std::string_view p : parts) s += p;
  return s;
}

enum class Kind {
  kDefault, kLlama3, kJais2, kDeepseekLlm, kDeepseekCoder, kDeepseek3, kSpark25, kFalcon,
  kStarcoder, kGpt2, kQwen2, kQwen35, kPoro, kViking, kTekken, kChameleon, kGpt4o, kGraniteMulti,
  kSuperbpe, kBailing, kSeedCoder, kUfakzeka, kLaguna, kExaoneMoe, kMinicpm5, kGemma4,
};

std::vector<std::string> regexes_of(Kind kind) {
  const std::string llama3 = cat({kContractions, kLlama3Tail});
  const std::string qwen2 = cat({kContractions, kQwen2Tail});
  switch (kind) {
    case Kind::kDefault:
      return {R"([\p{P}\$\+<=>\^~\|]+)", std::string(kGpt2), R"(\p{N}+)", "[0-9][0-9][0-9]"};
    case Kind::kLlama3: return {llama3};
    case Kind::kJais2: return {cat({kContractions, kJais2Tail})};
    case Kind::kDeepseekLlm:
      return {R"([\r\n])", R"(\s?[\p{Lu}\p{Ll}\p{Lt}]+)",
              R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
              R"(\s+$)", std::string(kCjkDeepseek), R"(\p{N}+)"};
    case Kind::kDeepseekCoder:
      return {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", std::string(kCjkDeepseek), R"(\p{N})"};
    case Kind::kDeepseek3: return {R"(\p{N}{1,3})", std::string(kCjkKana), std::string(kDeepseek3)};
    case Kind::kSpark25:
      return {R"(\p{N}{1,3})", std::string(kCjkKana), std::string(kSpark25), R"(\p{N})"};
    case Kind::kFalcon:
      return {R"([\p{P}\$\+<=>\^~\|`]+)", std::string(kGpt2), "[0-9][0-9][0-9]"};
    case Kind::kStarcoder: return {R"(\p{N})", std::string(kGpt2)};
    case Kind::kGpt2: return {std::string(kGpt2)};
    case Kind::kQwen2: return {qwen2};
    case Kind::kQwen35: return {cat({kContractions, kQwen35Tail})};
    case Kind::kPoro: return {std::string(kPoro)};
    case Kind::kViking: return {std::string(kPoro), R"(\p{N})"};
    case Kind::kTekken:
      return {cat({kUpperThenLower, "|", kUpperRunThenLower, R"(|\p{N})", kWordTail})};
    case Kind::kChameleon:
      return {"<sentinel:[0-9]+>", "(?:IMGIMG)(?:(?:A|B|C|D|E|F|G|H|I){1,4})Z", R"((?:[\t\n]|    |  ))",
              R"(\p{N})", R"([\p{P}!-/:-@\[-`{-~])", std::string(kGpt2)};
    case Kind::kGpt4o:
      return {cat({kUpperThenLower, kContractions, "?|", kUpperRunThenLower, kContractions,
                   R"(?|\p{N}{1,3})", kWordTail})};
    case Kind::kGraniteMulti:
      return {cat({kGraniteMulti, kContractions, "?|", kGraniteMultiRun, kContractions,
                   R"(?|\p{N}{1,3})", kWordTail})};
    case Kind::kSuperbpe: return {R"(\p{N}+)", R"((?=(?:\d{3})+(?!\d)))"};
    case Kind::kBailing:
      return {R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
              R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)"};
    case Kind::kSeedCoder:
      return {cat({kContractions, R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+)",
                   R"(|\s*[\r\n]+|\s+(?!\S)|\s+)"})};
    case Kind::kUfakzeka: return {std::string(kQwen2Tail.substr(1))};
    case Kind::kLaguna: return {R"([^\n]+|[\n]+)", qwen2};
    case Kind::kExaoneMoe:
      return {cat({kContractions, R"(|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N})",
                   R"(| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)"})};
    case Kind::kMinicpm5:
      return {R"(\p{N}{1,3})",
              cat({kContractions, R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*)",
                   R"(|\s*[\r\n]+|\s+(?!\S)|\s+)"})};
    case Kind::kGemma4: return {R"([^\n]+|[\n]+)"};
  }
  return {};
}

// Flags beyond the regexes (llama.cpp's llama_vocab::impl::load, BPE branch).
struct Flags {
  bool clean_spaces = true;
  bool ignore_merges = false;
  bool add_bos = false;
  bool byte_encode = true;
  bool escape_whitespaces = false;
  bool no_bos = false;
  bool add_sep = false;
};
constexpr Flags kClean{};
constexpr Flags kNoClean{.clean_spaces = false};

struct Entry {
  std::initializer_list<std::string_view> names;
  Kind kind;
  Flags flags;
};

const Entry kEntries[] = {
    {{"", "default"}, Kind::kDefault, kClean},
    {{"minicpm5"}, Kind::kMinicpm5, {.ignore_merges = true}},
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
      "jina-v5-nano"},
     Kind::kLlama3,
     {.ignore_merges = true, .add_bos = true}},
    {{"deepseek-llm"}, Kind::kDeepseekLlm, kNoClean},
    {{"deepseek-coder"}, Kind::kDeepseekCoder, kNoClean},
    {{"deepseek-v3", "hunyuan-dense", "hy_v4", "joyai-llm"}, Kind::kDeepseek3, kNoClean},
    {{"spark2_5"}, Kind::kSpark25, kNoClean},
    {{"falcon"}, Kind::kFalcon, kClean},
    {{"mpt", "olmo", "jais", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es",
      "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "exaone4"},
     Kind::kGpt2,
     kClean},
    {{"jina-v1-en", "jina-v2-code", "roberta-bpe"}, Kind::kGpt2, {.add_sep = true}},
    {{"trillion", "granite-docling"}, Kind::kGpt2, kNoClean},
    {{"jais-2"}, Kind::kJais2, kClean},
    {{"gemma4", "granite-embed-multi-311m"},
     Kind::kGemma4,
     {.byte_encode = false, .escape_whitespaces = true}},
    {{"sarvam-moe"},
     Kind::kGemma4,
     {.clean_spaces = false, .byte_encode = false, .escape_whitespaces = true}},
    {{"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"}, Kind::kStarcoder, kClean},
    {{"command-r", "smollm"}, Kind::kStarcoder, kNoClean},
    {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"},
     Kind::kQwen2,
     kNoClean},
    {{"megrez", "stablelm2"}, Kind::kQwen2, kClean},
    {{"qwen35"}, Kind::kQwen35, kNoClean},
    {{"dbrx", "smaug-bpe"}, Kind::kLlama3, kClean},
    {{"glm4", "chatglm-bpe"}, Kind::kLlama3, {.no_bos = true}},
    {{"poro-chat"}, Kind::kPoro, kNoClean},
    {{"bloom", "gpt3-finnish"}, Kind::kPoro, kClean},
    {{"viking"}, Kind::kViking, kNoClean},
    {{"tekken"}, Kind::kTekken, {.clean_spaces = false, .ignore_merges = true, .add_bos = true}},
    {{"chameleon"}, Kind::kChameleon, {.clean_spaces = false, .add_bos = true}},
    {{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, Kind::kGpt4o, kNoClean},
    {{"granite-embed-multi-97m"}, Kind::kGraniteMulti, {.clean_spaces = false, .ignore_merges = true}},
    {{"superbpe"}, Kind::kSuperbpe, kNoClean},
    {{"bailingmoe", "bailingmoe2", "llada-moe"}, Kind::kBailing, kNoClean},
    {{"seed-coder"}, Kind::kSeedCoder, kNoClean},
    {{"ufakzeka"}, Kind::kUfakzeka, kNoClean},
    {{"laguna"}, Kind::kLaguna, kNoClean},
    {{"exaone-moe"}, Kind::kExaoneMoe, kClean},
};

// Known to llama.cpp but needing hand-written splitters or normalizers owl does not have.
constexpr std::string_view kUnsupported[] = {"kimi-k2", "afmoe", "tiny_aya", "cohere2moe", "youtu",
                                             "whitespace"};

// llama.cpp's whitespace set (unicode_set_whitespace), as PCRE2 class members.
constexpr std::string_view kSpaceMembers =
    R"(\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

}  // namespace

Result<PreTokenizerSpec> find_pre_tokenizer(std::string_view pre) {
  for (const Entry& e : kEntries) {
    if (std::find(e.names.begin(), e.names.end(), pre) == e.names.end()) continue;
    PreTokenizerSpec spec;
    spec.name = std::string(pre.empty() ? "default" : pre);
    spec.regexes = regexes_of(e.kind);
    spec.clean_spaces = e.flags.clean_spaces;
    spec.ignore_merges = e.flags.ignore_merges;
    spec.add_bos = e.flags.add_bos;
    spec.byte_encode = e.flags.byte_encode;
    spec.escape_whitespaces = e.flags.escape_whitespaces;
    spec.no_bos = e.flags.no_bos;
    spec.add_sep = e.flags.add_sep;
    return spec;
  }
  for (std::string_view name : kUnsupported) {
    if (name == pre) {
      return make_error("tokenizer: pre-tokenizer '{}' (tokenizer.ggml.pre) needs a custom splitter owl does not have",
                        pre);
    }
  }
  return make_error("tokenizer: unknown pre-tokenizer type '{}' (tokenizer.ggml.pre)", pre);
}

Result<std::string> translate_regex(std::string_view re) {
  // A class that holds \p{S} follows llama.cpp, whose \p{S} leaves out '~': a positive class
  // becomes (?:(?!~)[...]), a negated one (?:~|[^...]).
  std::string out;
  std::string cls;  // the class being copied, when inside one
  bool in_class = false;
  bool class_has_symbol = false;
  for (size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    std::string& dst = in_class ? cls : out;
    if (c == '\\' && i + 1 < re.size()) {
      const char e = re[i + 1];
      if (e == 's') {
        dst += in_class ? std::string(kSpaceMembers) : "[" + std::string(kSpaceMembers) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kSpaceMembers) + "]";
      } else if (e == 'S') {
        return make_error("tokenizer: regex '{}': \\S inside a class is not supported", re);
      } else if (e == 'd') {
        dst += in_class ? "0-9" : "[0-9]";
      } else if (re.substr(i, 5) == R"(\p{S})") {
        if (in_class) {
          class_has_symbol = true;
          cls += R"(\p{S})";
        } else {
          out += R"([^\P{S}~])";
        }
        i += 3;
      } else {
        dst += c;
        dst += e;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      class_has_symbol = false;
      cls = "[";
      continue;
    }
    if (in_class && c == ']' && cls != "[" && cls != "[^") {
      cls += ']';
      in_class = false;
      const bool negated = cls.size() > 1 && cls[1] == '^';
      if (!class_has_symbol || cls.find('~') != std::string::npos) {
        out += cls;
      } else if (negated) {
        out += "(?:~|" + cls + ")";
      } else {
        out += "(?:(?!~)" + cls + ")";
      }
      continue;
    }
    dst += c;
  }
  if (in_class) return make_error("tokenizer: regex '{}': unterminated class", re);
  return out;
}

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

Result<PreTokenizer> PreTokenizer::make(const PreTokenizerSpec& spec) {
  PreTokenizer pt;
  for (const std::string& regex : spec.regexes) {
    Result<std::string> pattern = translate_regex(regex);
    if (!pattern.ok()) return pattern.error();
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    auto compiled = std::make_unique<Compiled>();
    compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern->data()), pattern->size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error_code,
                                   &error_offset, nullptr);
    if (compiled->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      return make_error("tokenizer: pre-tokenizer '{}': regex '{}' does not compile at {}: {}", spec.name,
                        *pattern, error_offset, reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if absent
    pt.regexes_.push_back(std::move(compiled));
  }
  return pt;
}

namespace {

// One regex over one piece [begin, end) of `text`: appends matches and the gaps between them,
// with std::regex_iterator's rule for empty matches (retry non-empty at the same place, else step
// one character).
void split_piece(const pcre2_code* code, pcre2_match_data* md, std::string_view text, Span piece,
                 std::vector<Span>& out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + piece.begin);
  const PCRE2_SIZE length = piece.end - piece.begin;
  PCRE2_SIZE pos = 0;
  PCRE2_SIZE gap_start = 0;
  uint32_t options = 0;
  const auto emit = [&](PCRE2_SIZE b, PCRE2_SIZE e) {
    if (e > b) out.push_back({piece.begin + static_cast<uint32_t>(b), piece.begin + static_cast<uint32_t>(e)});
  };
  while (pos <= length) {
    int rc = pcre2_match(code, subject, length, pos, options | PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subject, length, pos, options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    }
    if (rc < 0) {
      if (options != 0 && pos < length) {
        // No non-empty match here after an empty one: step over one character.
        options = 0;
        ++pos;
        while (pos < length && (subject[pos] & 0xC0) == 0x80) ++pos;
        continue;
      }
      break;  // no more matches (or a resource limit: the rest stays one gap)
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    emit(gap_start, ov[0]);
    emit(ov[0], ov[1]);
    gap_start = ov[1];
    pos = ov[1];
    options = ov[0] == ov[1] ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
  }
  emit(gap_start, length);
}

}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<Span>& words, std::vector<Span>& scratch) const {
  if (text.empty()) return;
  pcre2_match_data* md = pcre2_match_data_create(4, nullptr);
  const size_t first = words.size();
  words.push_back({0, static_cast<uint32_t>(text.size())});
  for (const auto& regex : regexes_) {
    scratch.clear();
    for (size_t i = first; i < words.size(); ++i) split_piece(regex->code, md, text, words[i], scratch);
    words.resize(first);
    words.insert(words.end(), scratch.begin(), scratch.end());
  }
  pcre2_match_data_free(md);
}

}  // namespace owl::tokenizer
