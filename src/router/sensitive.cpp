#include "router/sensitive.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace owl::router {
namespace {

constexpr uint32_t kMatchLimit = 1'000'000;  // backtracking steps per match attempt
constexpr uint32_t kDepthLimit = 10'000;

std::string digits_of(std::string_view s) {
  std::string d;
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) d += c;
  }
  return d;
}

bool luhn(std::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int v = digits[i] - '0';
    if (twice && (v *= 2) > 9) v -= 9;
    sum += v;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool valid_card(std::string_view match) {
  const std::string d = digits_of(match);
  if (d.size() < 13 || d.size() > 19) return false;
  if (std::all_of(d.begin(), d.end(), [&](char c) { return c == d[0]; })) return false;  // 0000 0000 ...
  return luhn(d);
}

// ISO 13616: the lengths of the common countries; others 15..34.
bool valid_iban(std::string_view match) {
  std::string s;
  for (char c : match) {
    if (c != ' ') s += c;
  }
  static const std::map<std::string, size_t, std::less<>> kLength = {
      {"AT", 20}, {"BE", 16}, {"CH", 21}, {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"ES", 24}, {"FI", 18}, {"FR", 27},
      {"GB", 22}, {"IE", 22}, {"IT", 27}, {"LU", 20}, {"NL", 18}, {"NO", 15}, {"PL", 28}, {"PT", 25}, {"SE", 24}};
  if (s.size() < 15 || s.size() > 34) return false;
  if (auto it = kLength.find(std::string_view(s).substr(0, 2)); it != kLength.end() && it->second != s.size()) return false;
  // Move the first four characters to the end, letters as 10..35, the number mod 97 is 1.
  const std::string r = s.substr(4) + s.substr(0, 4);
  int mod = 0;
  for (char c : r) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      mod = (mod * 10 + (c - '0')) % 97;
    } else if (c >= 'A' && c <= 'Z') {
      mod = (mod * 100 + (c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return mod == 1;
}

bool valid_phone(std::string_view match) {
  const size_t n = digits_of(match).size();
  return n >= 8 && n <= 15;
}

struct Builtin {
  const char* name;
  const char* regex;
  bool (*valid)(std::string_view);  // null: the regex decides
};

// ASCII patterns over bytes (no UTF mode: any bytes are valid input).
const Builtin kBuiltins[] = {
    {"secret",
     R"((?:-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----(?s:.*?-----END[A-Z ]{0,40}PRIVATE KEY-----|.*))"
     R"(|(?<![A-Za-z0-9_-])sk-(?:proj-|ant-(?:api[0-9]{2}-)?|svcacct-)?[A-Za-z0-9_-]{20,})"
     R"(|(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z]))"
     R"(|(?<![A-Za-z0-9_])gh[poshur]_[A-Za-z0-9]{36,})"
     R"(|(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,})"
     R"(|(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,})"
     R"(|(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35})"
     R"(|(?<![A-Za-z0-9_])(?:sk|rk)_live_[0-9A-Za-z]{16,})"
     R"(|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,})"
     R"(|[A-Za-z][A-Za-z0-9+.-]{0,20}://[^\s:/@]{1,256}:[^\s@/]{1,256}@[^\s/]{1,256}))",
     nullptr},
    {"email", R"((?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-]))",
     nullptr},
    {"card", R"((?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9]))", valid_card},
    {"iban",
     R"((?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?![A-Za-z0-9]))",
     valid_iban},
    {"us_ssn", R"((?<![0-9-])(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9-]))", nullptr},
    {"phone",
     R"((?<![A-Za-z0-9+])(?:(?:\+|00)[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5})"
     R"(|(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[-. ])[2-9][0-9]{2}[-. ][0-9]{4})(?![A-Za-z0-9-]))",
     valid_phone},
};

// Escapes a word for a regex (every character but letters and digits).
std::string quote(std::string_view word) {
  std::string out;
  for (char c : word) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && !(static_cast<unsigned char>(c) & 0x80)) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

struct SensitiveDetector::Pattern {
  std::string name;
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  bool (*valid)(std::string_view) = nullptr;
  ~Pattern() {
    if (context != nullptr) pcre2_match_context_free(context);
    if (code != nullptr) pcre2_code_free(code);
  }

  static core::Result<std::shared_ptr<const Pattern>> make(std::string name, const std::string& regex, uint32_t flags,
                                                           bool (*valid)(std::string_view)) {
    auto p = std::make_shared<Pattern>();
    p->name = std::move(name);
    p->valid = valid;
    int error = 0;
    PCRE2_SIZE offset = 0;
    p->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), flags, &error, &offset, nullptr);
    if (p->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return core::make_error("detector '{}': the regex does not compile at offset {}: {}", p->name, offset,
                              reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);  // when JIT is not available, the interpreter runs
    p->context = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(p->context, kMatchLimit);
    pcre2_set_depth_limit(p->context, kDepthLimit);
    return std::shared_ptr<const Pattern>(std::move(p));
  }

  void find(std::string_view text, std::vector<Detection>& out) const {
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(code, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    for (size_t start = 0; start <= text.size();) {
      const int rc = pcre2_match(code, subject, text.size(), start, 0, data, context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        // Gave up (match or depth limit, or a malformed subject): the rest counts as a match.
        out.push_back({name, start, text.size() - start});
        break;
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
      const size_t begin = ovector[0], end = ovector[1];
      if (end > begin && (valid == nullptr || valid(text.substr(begin, end - begin)))) out.push_back({name, begin, end - begin});
      start = end > begin ? end : begin + 1;
    }
    pcre2_match_data_free(data);
  }
};

const std::vector<std::string>& SensitiveDetector::builtin_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Builtin& b : kBuiltins) n.emplace_back(b.name);
    return n;
  }();
  return names;
}

core::Result<SensitiveDetector> SensitiveDetector::make(const SensitiveOptions& options) {
  SensitiveDetector d;
  std::vector<std::string> names;
  auto take = [&](const std::string& name) -> core::Status {
    if (name.empty()) return core::make_error("a detector has no name");
    if (std::find(names.begin(), names.end(), name) != names.end()) return core::make_error("detector '{}' is named twice", name);
    names.push_back(name);
    return {};
  };
  for (const std::string& name : options.builtin) {
    const Builtin* b = nullptr;
    for (const Builtin& candidate : kBuiltins) {
      if (name == candidate.name) b = &candidate;
    }
    if (b == nullptr) return core::make_error("'{}' is not a built-in detector (one of: {})", name, fmt::join(builtin_names(), ", "));
    OWL_TRY(take(name));
    auto p = Pattern::make(b->name, b->regex, 0, b->valid);
    if (!p) return p.error();
    d.patterns_.push_back(std::move(*p));
  }
  for (const CustomDetector& c : options.custom) {
    OWL_TRY(take(c.name));
    if (c.regex.empty() && c.words.empty()) return core::make_error("detector '{}' has neither a regex nor words", c.name);
    const uint32_t utf = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    if (!c.regex.empty()) {
      auto p = Pattern::make(c.name, c.regex, utf, nullptr);
      if (!p) return p.error();
      d.patterns_.push_back(std::move(*p));
    }
    if (!c.words.empty()) {
      std::vector<std::string> quoted;
      for (const std::string& w : c.words) {
        if (w.empty()) return core::make_error("detector '{}' has an empty word", c.name);
        quoted.push_back(quote(w));
      }
      const std::string regex = fmt::format(R"((?<![\w])(?:{})(?![\w]))", fmt::join(quoted, "|"));
      auto p = Pattern::make(c.name, regex, utf | PCRE2_UCP | PCRE2_CASELESS, nullptr);
      if (!p) return p.error();
      d.patterns_.push_back(std::move(*p));
    }
  }
  return d;
}

std::vector<Detection> SensitiveDetector::find(std::string_view text) const {
  std::vector<Detection> all;
  std::vector<size_t> rank;
  for (size_t i = 0; i < patterns_.size(); ++i) {
    patterns_[i]->find(text, all);
    rank.resize(all.size(), i);
  }
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (all[a].offset != all[b].offset) return all[a].offset < all[b].offset;
    if (rank[a] != rank[b]) return rank[a] < rank[b];
    return all[a].length > all[b].length;
  });
  std::vector<Detection> out;
  size_t covered = 0;
  for (size_t i : order) {
    if (!out.empty() && all[i].offset < covered) continue;
    covered = all[i].offset + all[i].length;
    out.push_back(std::move(all[i]));
  }
  return out;
}

std::vector<std::string> SensitiveDetector::fired(std::string_view text) const {
  std::vector<std::string> names;
  for (Detection& d : find(text)) {
    if (std::find(names.begin(), names.end(), d.detector) == names.end()) names.push_back(std::move(d.detector));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string SensitiveDetector::redact(std::string_view text) const {
  std::string out;
  size_t at = 0;
  for (const Detection& d : find(text)) {
    out.append(text.substr(at, d.offset - at));
    out += "[REDACTED:" + d.detector + "]";
    at = d.offset + d.length;
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace owl::router
