#include "router/sensitive.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace owl::router {

using core::make_error;
using core::Result;

namespace {

// Limits for one pcre2_match call. A pattern that backtracks exponentially (a user's `(a+)+$`)
// stops at the match limit within milliseconds; the depth and heap limits bound the interpreter's
// memory, the JIT stack the JIT's. Hitting any of them makes the search a detection (see scan()).
// A pattern that backtracks polynomially (`a*a*[0-9]`) stays under them: with the JIT, about
// 1.5 s on 100 KB of 'a'.
constexpr uint32_t kMatchLimit = 1'000'000;
constexpr uint32_t kDepthLimit = 100'000;
constexpr uint32_t kHeapLimitKib = 16 * 1024;
constexpr size_t kJitStackStart = 32 * 1024;
constexpr size_t kJitStackMax = 1024 * 1024;

// A check after the regex: the length of the accepted prefix of `match`, 0 to reject it.
using Validator = size_t (*)(std::string_view match);

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }

// The top-level domain is letters only, at least two ("pkg@1.2.3" is a version, not an address).
size_t check_email(std::string_view m) {
  const std::string_view tld = m.substr(m.rfind('.') + 1);
  const bool letters = std::all_of(tld.begin(), tld.end(), [](char c) { return is_upper(c) || is_lower(c); });
  return tld.size() >= 2 && letters ? m.size() : 0;
}

// E.164 allows at most 15 digits after the '+' (or the international prefix 00); fewer than 8
// are not a reachable number. "00" followed by digits alone is more often a zero-padded number
// than a phone, so that form needs a separator.
size_t check_international_phone(std::string_view m) {
  const bool double_zero = m.starts_with("00");
  size_t digits = 0;
  bool separated = false;
  for (char c : m) {
    if (is_digit(c)) {
      ++digits;
    } else if (c != '+') {
      separated = true;
    }
  }
  if (double_zero) digits -= 2;
  if (double_zero && !separated) return 0;
  return digits >= 8 && digits <= 15 ? m.size() : 0;
}

// Luhn (ISO/IEC 7812-1 annex B): from the right, every second digit doubled, digit sums added;
// the total is a multiple of 10.
size_t check_card(std::string_view m) {
  int sum = 0;
  size_t n = 0;
  for (auto it = m.rbegin(); it != m.rend(); ++it) {
    if (!is_digit(*it)) continue;
    int d = *it - '0';
    if (n % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    ++n;
  }
  return n >= 13 && n <= 19 && sum % 10 == 0 ? m.size() : 0;
}

struct IbanLength {
  char country[3];
  int length;
};

// IBAN lengths by country, from the SWIFT IBAN registry (release 2024); other codes may be 15-34.
constexpr IbanLength kIbanLengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27},
    {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24}, {"PL", 28},
    {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31},
    {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

// ISO 13616 check: the first four characters moved to the end, letters read as 10..35, the
// number mod 97 is 1.
bool iban_mod97(std::string_view iban) {
  int rem = 0;
  for (size_t i = 0; i < iban.size(); ++i) {
    const char c = iban[(i + 4) % iban.size()];
    if (is_digit(c)) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else {
      rem = (rem * 100 + (c - 'A' + 10)) % 97;
    }
  }
  return rem == 1;
}

// The regex takes 4-character groups greedily, so it may run into a following code ("... 32
// EURO"): a known country's IBAN is cut to its length when that falls on a group boundary.
size_t check_iban(std::string_view m) {
  std::string compact;  // the characters without spaces
  std::vector<size_t> end_of;  // end_of[i]: the offset in m just after compact[i]
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == ' ') continue;
    compact += m[i];
    end_of.push_back(i + 1);
  }
  int expected = 0;
  for (const IbanLength& e : kIbanLengths) {
    if (compact.compare(0, 2, e.country) == 0) expected = e.length;
  }
  size_t n = compact.size();
  if (expected > 0) {
    if (n < static_cast<size_t>(expected)) return 0;
    n = static_cast<size_t>(expected);
    if (end_of[n - 1] != m.size() && m[end_of[n - 1]] != ' ') return 0;
  } else if (n < 15 || n > 34) {
    return 0;
  }
  return iban_mod97(std::string_view(compact).substr(0, n)) ? end_of[n - 1] : 0;
}

// Provider keys are random base62: an "sk-" word without an upper-case letter, a lower-case
// letter and a digit is a slug ("sk-learn-...").
size_t check_random_key(std::string_view m) {
  const auto has = [m](bool (*pred)(char)) { return std::any_of(m.begin(), m.end(), pred); };
  return has(is_upper) && has(is_lower) && has(is_digit) ? m.size() : 0;
}

struct BuiltinPattern {
  const char* regex;
  Validator validate = nullptr;
};

struct Builtin {
  const char* name;
  std::vector<BuiltinPattern> patterns;
};

// The built-in patterns, compiled in byte mode (\w is [A-Za-z0-9_]). Every one starts with a
// lookbehind that rejects a start inside a longer token, so a failed attempt is not retried at
// each byte of a long run; repeats are bounded or possessive, so an attempt is linear in the
// length of what it reads. Phones and cards do not start right after two digits and a separator:
// "0044 0532 0130 01" inside an IBAN's groups is neither.
const std::vector<Builtin>& builtins() {
  static const std::vector<Builtin> table = {
      {"email",
       {{R"re((?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}+@[A-Za-z0-9\-]{1,63}+(?:\.[A-Za-z0-9\-]{1,63}+)++(?![\w\-]))re",
         check_email}}},
      {"phone",
       {// International: + or 00, the country code, then digits and (area) groups separated by
        // at most one space or dash.
        {R"re((?<![\w+.,/\-])(?:\+|(?<!\d\d[ \-])00)[1-9](?:[ \-]?(?:\d|\(\d{1,4}\))){6,17}+(?![\w]|[.\-]\d))re",
         check_international_phone},
        // North American: (NXX) NXX-XXXX or NXX-NXX-XXXX (N is 2-9), optionally after "1-".
        {R"re((?<![\w+.,/\-])(?<!\d\d[ \-])(?:1[ .\-])?(?:\([2-9]\d{2}\)[ .\-]?|[2-9]\d{2}[ .\-])[2-9]\d{2}[ .\-]\d{4}(?![\w]|[.\-]\d))re"}}},
      {"card",
       {// 13-19 digits starting 2-6 (the issuer ranges in use): contiguous, in groups of four
        // (the last one to four, then optionally one to three more), or 4-6-4/5 (Amex, Diners).
        {R"re((?<![\w.\-])(?<!\d\d[ \-])[2-6]\d{3}(?:\d{9,15}|([ \-])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|([ \-])\d{6}\2\d{4,5})(?![\w]|[.\-]\d))re",
         check_card}}},
      {"iban",
       {{R"re((?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}+(?: ?[A-Z0-9]{1,4})?(?![\w]))re", check_iban}}},
      {"us_ssn",
       {// Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
        {R"re((?<![\w\-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w]|-\d))re"}}},
      {"secret",
       {// OpenAI (sk-, sk-proj-, ...) and Anthropic (sk-ant-...).
        {R"re((?<![\w\-])sk-[A-Za-z0-9_\-]{20,}+)re", check_random_key},
        // Stripe live secret and restricted keys.
        {R"re((?<![\w\-])[rs]k_live_[A-Za-z0-9]{16,}+)re"},
        // AWS access key ids (long-term and temporary).
        {R"re((?<![A-Za-z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9]))re"},
        // GitHub personal, OAuth, server, user-to-server and refresh tokens; fine-grained tokens.
        {R"re((?<![\w])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{30,}+))re"},
        // Slack bot, user, app, refresh and session tokens.
        {R"re((?<![\w\-])xox[abprs]-[A-Za-z0-9\-]{10,}+)re"},
        // Google API keys.
        {R"re((?<![\w\-])AIza[A-Za-z0-9_\-]{35}(?![\w\-]))re"},
        // PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, PGP ... BLOCK), through the END line or,
        // cut off, to the end of the text.
        {R"re(-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----|\z))re"},
        // A password in a URL: the match is "user:password" between "scheme://" and the last '@'
        // before the path.
        {R"re((?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,31}://\K[^\s:/?#@]{0,256}+:[^\s/?#]{1,512}(?=@))re"},
        // JSON Web Tokens: header (base64url of '{"'), payload, signature (empty if unsigned).
        {R"re((?<![\w\-])eyJ[A-Za-z0-9_\-]{5,}+\.[A-Za-z0-9_\-]{5,}+\.[A-Za-z0-9_\-]*+)re"}}},
  };
  return table;
}

struct CodeFree {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
using Code = std::unique_ptr<pcre2_code, CodeFree>;

struct Pattern {
  Code code;
  Validator validate = nullptr;
};

struct Detector {
  std::string name;
  std::vector<Pattern> patterns;
};

// The error is PCRE2's message and offset.
Result<Code> compile_code(std::string_view regex, uint32_t flags) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), flags, &error_code,
                                   &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return make_error("does not compile at offset {}: {}", error_offset, reinterpret_cast<const char*>(message));
  }
  return Code(code);
}

// Compiles and JIT-compiles (where the platform has a JIT; else PCRE2 interprets).
Result<Pattern> compile(std::string_view regex, uint32_t flags, Validator validate) {
  auto code = compile_code(regex, flags);
  if (!code.ok()) return code.error();
  pcre2_jit_compile(code->get(), PCRE2_JIT_COMPLETE);
  return Pattern{std::move(*code), validate};
}

// Custom patterns: UTF-8 with Unicode classes; invalid UTF-8 in the text never matches instead of
// failing the search; no \C, which could split a character.
constexpr uint32_t kCustomFlags = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;

// One word as a pattern: ASCII letters and digits and non-ASCII bytes as they are, a run of white
// space as \s+, any other byte as \x{..}. The word is trimmed and non-empty.
std::string word_pattern(std::string_view word) {
  std::string out;
  for (size_t i = 0; i < word.size(); ++i) {
    const auto c = static_cast<unsigned char>(word[i]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      while (i + 1 < word.size() && (word[i + 1] == ' ' || word[i + 1] == '\t' || word[i + 1] == '\n' ||
                                     word[i + 1] == '\r')) {
        ++i;
      }
      out += "\\s+";
    } else if (c >= 0x80 || (c >= '0' && c <= '9') || is_upper(static_cast<char>(c)) ||
               is_lower(static_cast<char>(c))) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{{{:02x}}}", c);
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// The words as one case-insensitive alternation, longest first (so "new york city" wins over
// "new york"), each neither preceded nor followed by a letter, digit or '_'.
Result<Pattern> compile_words(const CustomDetector& custom) {
  std::vector<std::string_view> words;
  for (size_t i = 0; i < custom.words.size(); ++i) {
    const std::string_view word = trim(custom.words[i]);
    if (word.empty()) return make_error("sensitive: custom detector '{}': word {} is empty", custom.name, i + 1);
    // Alone, so that an error's offset is the word's own.
    auto literal = compile_code(word, PCRE2_UTF | PCRE2_LITERAL);
    if (!literal.ok()) {
      return make_error("sensitive: custom detector '{}': word {} '{}' {}", custom.name, i + 1, word, literal.message());
    }
    words.push_back(word);
  }
  std::stable_sort(words.begin(), words.end(), [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  std::string regex = "(?<!\\w)(?:";
  for (size_t i = 0; i < words.size(); ++i) regex += (i > 0 ? "|" : "") + word_pattern(words[i]);
  regex += ")(?!\\w)";
  auto pattern = compile(regex, kCustomFlags | PCRE2_CASELESS, nullptr);
  if (!pattern.ok()) return make_error("sensitive: custom detector '{}': words {}", custom.name, pattern.message());
  return pattern;
}

bool valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return is_digit(c) || is_upper(c) || is_lower(c) || c == '_' || c == '-' || c == '.';
  });
}

// A match of detector `detector` at [offset, offset + length).
struct Hit {
  size_t offset = 0;
  size_t length = 0;
  uint32_t detector = 0;
};

// What one call needs of PCRE2 for itself: match data, and a match context with the limits and
// a JIT stack (which must not be shared between threads).
class MatchState {
 public:
  MatchState()
      : data_(pcre2_match_data_create(1, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        jit_stack_(pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr)) {
    OWL_CHECK(data_ != nullptr && context_ != nullptr);
    pcre2_set_match_limit(context_, kMatchLimit);
    pcre2_set_depth_limit(context_, kDepthLimit);
    pcre2_set_heap_limit(context_, kHeapLimitKib);
    if (jit_stack_ != nullptr) pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
  }
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(data_);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;

  pcre2_match_data* data() { return data_; }
  pcre2_match_context* context() { return context_; }

 private:
  pcre2_match_data* data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* jit_stack_;
};

// Appends the validated, non-empty matches of one pattern (only the first when `first_only`).
// A rejected candidate is retried one byte further on, since a shorter or later one may pass
// (only built-ins, which match bytes, have validators). A search that hits a limit, which a
// user's pattern can do on purpose or by accident, is a detection from where it started to the
// end of the text: we cannot tell what it would have found, and the router fails closed.
void scan(const Pattern& pattern, uint32_t detector, std::string_view text, MatchState& state, bool first_only,
          std::vector<Hit>& out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(pattern.code.get(), subject, text.size(), pos, PCRE2_NOTEMPTY, state.data(),
                               state.context());
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) {
      out.push_back({pos, text.size() - pos, detector});
      return;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data());
    const size_t begin = ov[0];
    const size_t end = ov[1];
    if (end <= begin) {  // empty despite PCRE2_NOTEMPTY, as \K can make it: step past it
      pos = std::max(begin, end) + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    const size_t length = pattern.validate ? pattern.validate(text.substr(begin, end - begin)) : end - begin;
    if (length == 0) {
      pos = begin + 1;
      continue;
    }
    out.push_back({begin, length, detector});
    if (first_only) return;
    pos = begin + length;
  }
}

}  // namespace

struct SensitiveDetector::Compiled {
  std::vector<Detector> detectors;

  std::vector<Hit> collect(std::string_view text, bool first_only) const {
    std::vector<Hit> hits;
    if (text.empty()) return hits;
    MatchState state;
    for (uint32_t d = 0; d < detectors.size(); ++d) {
      for (const Pattern& pattern : detectors[d].patterns) {
        const size_t before = hits.size();
        scan(pattern, d, text, state, first_only, hits);
        if (first_only && hits.size() > before) break;
      }
    }
    return hits;
  }
};

Result<SensitiveDetector> SensitiveDetector::make(const SensitiveOptions& options) {
  auto compiled = std::make_shared<Compiled>();
  const auto taken = [&compiled](std::string_view name) {
    return std::any_of(compiled->detectors.begin(), compiled->detectors.end(),
                       [name](const Detector& d) { return d.name == name; });
  };
  for (const std::string& name : options.builtin) {
    const auto& table = builtins();
    auto it = std::find_if(table.begin(), table.end(), [&name](const Builtin& b) { return name == b.name; });
    if (it == table.end()) {
      std::string known;
      for (const Builtin& b : table) known += (known.empty() ? "" : ", ") + std::string(b.name);
      return make_error("sensitive: unknown built-in detector '{}' (known: {})", name, known);
    }
    if (taken(name)) return make_error("sensitive: built-in detector '{}' is listed twice", name);
    Detector detector{name, {}};
    for (const BuiltinPattern& p : it->patterns) {
      auto pattern = compile(p.regex, 0, p.validate);
      if (!pattern.ok()) return make_error("sensitive: built-in detector '{}': pattern {}", name, pattern.message());
      detector.patterns.push_back(std::move(*pattern));
    }
    compiled->detectors.push_back(std::move(detector));
  }
  for (const CustomDetector& custom : options.custom) {
    if (!valid_name(custom.name)) {
      return make_error("sensitive: custom detector name '{}': use letters, digits, '_', '-' and '.'", custom.name);
    }
    if (taken(custom.name)) return make_error("sensitive: detector name '{}' is used twice", custom.name);
    if (custom.regex.empty() && custom.words.empty()) {
      return make_error("sensitive: custom detector '{}': neither a regex nor any words", custom.name);
    }
    Detector detector{custom.name, {}};
    if (!custom.regex.empty()) {
      auto pattern = compile(custom.regex, kCustomFlags, nullptr);
      if (!pattern.ok()) {
        return make_error("sensitive: custom detector '{}': regex '{}' {}", custom.name, custom.regex, pattern.message());
      }
      detector.patterns.push_back(std::move(*pattern));
    }
    if (!custom.words.empty()) {
      auto pattern = compile_words(custom);
      if (!pattern.ok()) return pattern.error();
      detector.patterns.push_back(std::move(*pattern));
    }
    compiled->detectors.push_back(std::move(detector));
  }
  SensitiveDetector out;
  out.compiled_ = std::move(compiled);
  return out;
}

std::vector<Detection> SensitiveDetector::find(std::string_view text) const {
  std::vector<Hit> hits = compiled_->collect(text, false);
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    if (a.offset != b.offset) return a.offset < b.offset;
    if (a.length != b.length) return a.length > b.length;
    return a.detector < b.detector;
  });
  std::vector<Detection> out;
  for (const Hit& hit : hits) {
    if (!out.empty() && hit.offset < out.back().offset + out.back().length) {
      out.back().length = std::max(out.back().length, hit.offset + hit.length - out.back().offset);
      continue;
    }
    out.push_back({compiled_->detectors[hit.detector].name, hit.offset, hit.length});
  }
  return out;
}

std::vector<std::string> SensitiveDetector::fired(std::string_view text) const {
  std::vector<std::string> names;
  for (const Hit& hit : compiled_->collect(text, true)) names.push_back(compiled_->detectors[hit.detector].name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string SensitiveDetector::redact(std::string_view text) const {
  std::string out;
  size_t pos = 0;
  for (const Detection& d : find(text)) {
    out.append(text.substr(pos, d.offset - pos));
    out += "[REDACTED:" + d.detector + "]";
    pos = d.offset + d.length;
  }
  out.append(text.substr(pos));
  return out;
}

std::vector<std::string> SensitiveDetector::names() const {
  std::vector<std::string> out;
  for (const Detector& d : compiled_->detectors) out.push_back(d.name);
  return out;
}

}  // namespace owl::router
