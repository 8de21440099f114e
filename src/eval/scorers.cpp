// The scorers that need no model: each reads the case's expected value (or the spec's pattern,
// schema or command), compares the output with it and says why it passed or failed.
#include "eval/scorers.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

#include "eval/process.h"

namespace owl::eval {

using core::make_error;
using core::Result;
using core::Status;

namespace {

// Indexed by ScorerType.
constexpr const char* kTypeNames[] = {"exact",   "contains", "regex",   "json_valid", "json_schema", "json_fields",
                                      "choice",  "rouge_l",  "numeric", "length",     "judge",       "command"};
static_assert(std::size(kTypeNames) == static_cast<size_t>(ScorerType::kCommand) + 1);

// Limits for one pcre2_match call, as in router/sensitive.cpp: a pattern that backtracks
// exponentially (`(a+)+$`) stops at the match limit within milliseconds instead of hanging the run.
constexpr uint32_t kMatchLimit = 1'000'000;
constexpr uint32_t kDepthLimit = 100'000;
constexpr uint32_t kHeapLimitKib = 16 * 1024;

// Outputs and expected values are cut to this many bytes in a Score's detail.
constexpr size_t kDetailChars = 80;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    const size_t begin = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > begin) words.push_back(s.substr(begin, i - begin));
  }
  return words;
}

size_t count_code_points(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// `s` in single quotes for a detail, cut at a character boundary after kDetailChars bytes.
std::string in_quotes(std::string_view s) {
  if (s.size() <= kDetailChars) return fmt::format("'{}'", s);
  size_t cut = kDetailChars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return fmt::format("'{}...'", s.substr(0, cut));
}

// A string as it is; any other JSON value as its compact dump (so 42 compares with "42").
std::string as_text(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Score binary(bool passed, std::string detail = {}) { return Score{passed ? 1.0 : 0.0, passed, std::move(detail)}; }

Result<const Json*> expected_of(const ScorerSpec& spec, const ScoreInput& input) {
  if (!input.case_fields.is_object() || !input.case_fields.contains(spec.field)) {
    return make_error("scorer '{}': the case has no field '{}'", spec.label(), spec.field);
  }
  return &input.case_fields[spec.field];
}

// ---- regex ----------------------------------------------------------------------------------

struct CodeFree {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
using Code = std::unique_ptr<pcre2_code, CodeFree>;

// UTF-8 with Unicode classes; invalid UTF-8 in an output (a generation cut mid-character) never
// matches instead of failing the search.
constexpr uint32_t kRegexFlags = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_UCP;

// The error names the pattern and gives PCRE2's message and offset.
Result<Code> compile_regex(std::string_view pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), kRegexFlags,
                                   &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return make_error("regex '{}' does not compile at offset {}: {}", pattern, error_offset,
                      reinterpret_cast<const char*>(message));
  }
  return Code(code);
}

// A search anywhere in `text`: 1 on a match, 0 on none, a negative PCRE2 error (a limit) else.
int search(const Code& code, std::string_view text) {
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code.get(), nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  OWL_CHECK(data != nullptr && context != nullptr);
  pcre2_set_match_limit(context, kMatchLimit);
  pcre2_set_depth_limit(context, kDepthLimit);
  pcre2_set_heap_limit(context, kHeapLimitKib);
  const int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, data, context);
  pcre2_match_context_free(context);
  pcre2_match_data_free(data);
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  return rc < 0 ? rc : 1;
}

Result<Score> score_regex(const ScorerSpec& spec, const ScoreInput& input) {
  std::string pattern = spec.pattern;
  if (pattern.empty()) {
    auto expected = expected_of(spec, input);
    if (!expected.ok()) return expected.error();
    if (!(*expected)->is_string()) {
      return make_error("scorer '{}': field '{}' is not a string pattern", spec.label(), spec.field);
    }
    pattern = (*expected)->get<std::string>();
  }
  auto code = compile_regex(pattern);
  if (!code.ok()) return make_error("scorer '{}': {}", spec.label(), code.message());
  const int rc = search(*code, input.output);
  if (rc < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof(message));
    return binary(false, fmt::format("regex '{}' gave up: {}", pattern, reinterpret_cast<const char*>(message)));
  }
  return binary(rc == 1, rc == 1 ? "" : fmt::format("{} does not match '{}'", in_quotes(input.output), pattern));
}

// ---- JSON -----------------------------------------------------------------------------------

// The text inside one ``` or ```json fence, or the text itself when it has none.
std::string_view unfence(std::string_view text) {
  text = trim(text);
  if (!text.starts_with("```") || text.size() < 6 || !text.ends_with("```")) return text;
  std::string_view body = text.substr(3, text.size() - 6);
  if (body.size() >= 4 && to_lower(body[0]) == 'j' && to_lower(body[1]) == 's' && to_lower(body[2]) == 'o' &&
      to_lower(body[3]) == 'n' && (body.size() == 4 || is_space(body[4]))) {
    body.remove_prefix(4);
  }
  return body;
}

// The parsed value, or nlohmann's message.
Result<Json> parse_json(std::string_view text) {
  try {
    return Json::parse(unfence(text));
  } catch (const Json::exception& e) {
    return make_error("{}", e.what());
  }
}

using Leaves = std::vector<std::pair<std::string, const Json*>>;

// The leaves of an object by their dotted paths ("a.b"); arrays, scalars and empty objects are
// leaves. A top-level value that is not an object is one leaf, "$".
void flatten(const Json& value, const std::string& path, Leaves& out) {
  if (!value.is_object() || value.empty()) {
    out.emplace_back(path.empty() ? "$" : path, &value);
    return;
  }
  for (const auto& [key, child] : value.items()) flatten(child, path.empty() ? key : path + "." + key, out);
}

// Equality of JSON values where the order of an object's keys does not matter (ordered_json's
// operator== compares it).
bool same_value(const Json& a, const Json& b) { return nlohmann::json(a) == nlohmann::json(b); }

Leaves leaves_of(const Json& value) {
  Leaves out;
  if (value.is_object() && value.empty()) return out;
  flatten(value, "", out);
  return out;
}

// A chain of local $refs that comes back to where it started ({"$ref": "#"}) never reaches a
// schema: valijson would recurse until the stack ends. The first such $ref's pointer, or "".
std::string ref_cycle(const Json& root) {
  std::vector<const Json*> stack = {&root};
  while (!stack.empty()) {
    const Json* node = stack.back();
    stack.pop_back();
    if (node->is_object()) {
      for (const auto& [key, value] : node->items()) stack.push_back(&value);
    } else if (node->is_array()) {
      for (const Json& value : *node) stack.push_back(&value);
    }
    const Json* at = node;
    std::set<std::string> seen;
    while (at->is_object() && at->contains("$ref") && (*at)["$ref"].is_string()) {
      const std::string ref = (*at)["$ref"].get<std::string>();
      if (!ref.starts_with("#")) break;  // not local: valijson refuses it
      if (!seen.insert(ref).second) return ref;
      try {
        const Json::json_pointer pointer(ref.substr(1));
        if (!root.contains(pointer)) break;
        at = &root.at(pointer);
      } catch (const std::exception&) {
        break;  // not a JSON pointer: valijson refuses it
      }
    }
  }
  return "";
}

// Compiles a draft-07 schema; the error is valijson's.
Result<std::unique_ptr<valijson::Schema>> compile_schema(const Json& schema_json) {
  if (const std::string ref = ref_cycle(schema_json); !ref.empty()) {
    return make_error("schema does not compile: the $ref '{}' leads back to itself through $refs alone", ref);
  }
  try {
    const nlohmann::json doc(schema_json);
    auto schema = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    parser.populateSchema(valijson::adapters::NlohmannJsonAdapter(doc), *schema);
    return schema;
  } catch (const std::exception& e) {
    return make_error("schema does not compile: {}", e.what());
  }
}

// valijson's context ["<root>", "[address]", "[0]"] as "$.address[0]".
std::string json_path(const std::vector<std::string>& context) {
  std::string path = "$";
  for (const std::string& part : context) {
    if (part == "<root>") continue;
    const std::string_view inner = part.size() >= 2 && part.front() == '[' && part.back() == ']'
                                       ? std::string_view(part).substr(1, part.size() - 2)
                                       : std::string_view(part);
    const bool index = !inner.empty() && std::all_of(inner.begin(), inner.end(), is_digit);
    path += index ? fmt::format("[{}]", inner) : fmt::format(".{}", inner);
  }
  return path;
}

Result<Score> score_json_schema(const ScorerSpec& spec, const ScoreInput& input) {
  const Json* schema_json = &spec.schema;
  if (spec.schema.is_null()) {
    auto expected = expected_of(spec, input);
    if (!expected.ok()) return expected.error();
    schema_json = *expected;
  }
  auto schema = compile_schema(*schema_json);
  if (!schema.ok()) return make_error("scorer '{}': {}", spec.label(), schema.message());
  auto output = parse_json(input.output);
  if (!output.ok()) return binary(false, "not JSON: " + output.message());
  try {
    const nlohmann::json target(*output);
    valijson::Validator validator;
    valijson::ValidationResults results;
    if (validator.validate(**schema, valijson::adapters::NlohmannJsonAdapter(target), &results)) return binary(true);
    if (results.numErrors() == 0) return binary(false, "does not match the schema");
    // valijson records the innermost error first: the field at fault, then its parents.
    const auto& first = *results.begin();
    return binary(false, fmt::format("{}: {}", json_path(first.context), first.description));
  } catch (const std::exception& e) {
    return make_error("scorer '{}': validation failed: {}", spec.label(), e.what());
  }
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

Result<Score> score_json_fields(const ScorerSpec& spec, const ScoreInput& input) {
  auto expected = expected_of(spec, input);
  if (!expected.ok()) return expected.error();
  if (!(*expected)->is_object()) {
    return make_error("scorer '{}': field '{}' is not a JSON object", spec.label(), spec.field);
  }
  auto output = parse_json(input.output);
  if (!output.ok()) return Score{0, false, "not JSON: " + output.message()};
  const FieldMatch m = json_fields(**expected, *output);
  std::string detail = fmt::format("precision {:.2f}, recall {:.2f}", m.precision, m.recall);
  if (!m.missing.empty()) detail += "; missing " + join(m.missing);
  if (!m.wrong.empty()) detail += "; wrong " + join(m.wrong);
  if (!m.extra.empty()) detail += "; extra " + join(m.extra);
  return Score{m.f1, m.f1 >= spec.threshold, detail};
}

// ---- text -----------------------------------------------------------------------------------

Result<Score> score_exact(const ScorerSpec& spec, const ScoreInput& input) {
  auto expected = expected_of(spec, input);
  if (!expected.ok()) return expected.error();
  const Json& e = **expected;
  const std::string got = normalize_text(input.output, spec.normalize);
  const auto equal = [&](const Json& v) { return normalize_text(as_text(v), spec.normalize) == got; };
  if (e.is_array()) {
    if (std::any_of(e.begin(), e.end(), equal)) return binary(true);
    std::vector<std::string> options;
    for (const Json& v : e) options.push_back(in_quotes(as_text(v)));
    return binary(false, fmt::format("expected one of {}, got {}", join(options), in_quotes(input.output)));
  }
  if (equal(e)) return binary(true);
  return binary(false, fmt::format("expected {}, got {}", in_quotes(as_text(e)), in_quotes(input.output)));
}

Result<Score> score_contains(const ScorerSpec& spec, const ScoreInput& input) {
  auto expected = expected_of(spec, input);
  if (!expected.ok()) return expected.error();
  const Json& e = **expected;
  const std::string got = normalize_text(input.output, spec.normalize);
  const std::vector<Json> wanted = e.is_array() ? std::vector<Json>(e.begin(), e.end()) : std::vector<Json>{e};
  std::vector<std::string> absent;
  for (const Json& v : wanted) {
    if (got.find(normalize_text(as_text(v), spec.normalize)) == std::string::npos) absent.push_back(in_quotes(as_text(v)));
  }
  const double value =
      wanted.empty() ? 1.0 : static_cast<double>(wanted.size() - absent.size()) / static_cast<double>(wanted.size());
  return Score{value, value >= spec.threshold, absent.empty() ? "" : "does not contain " + join(absent)};
}

Result<Score> score_rouge_l(const ScorerSpec& spec, const ScoreInput& input) {
  auto expected = expected_of(spec, input);
  if (!expected.ok()) return expected.error();
  const Json& e = **expected;
  // Several references: the best one counts.
  double best = 0;
  for (const Json& reference : e.is_array() ? e : Json::array({e})) {
    if (!reference.is_string()) {
      return make_error("scorer '{}': field '{}' is not a string or a list of strings", spec.label(), spec.field);
    }
    best = std::max(best, rouge_l(input.output, reference.get<std::string>()));
  }
  return Score{best, best >= spec.threshold, fmt::format("ROUGE-L {:.3f}", best)};
}

// A number and where it lies in the text it was read from.
struct NumberAt {
  double value = 0;
  size_t begin = 0, end = 0;
};

// The number whose digits start at `i`: -?\d+(\.\d+)?([eE][+-]?\d+)?, where an integer part of at
// most three digits may continue in comma-separated groups of three ("1,234,567.5").
std::optional<NumberAt> number_at(std::string_view s, size_t i) {
  const size_t begin = i > 0 && s[i - 1] == '-' ? i - 1 : i;
  std::string text(s.substr(begin, i - begin));
  const auto digits_from = [&](size_t j) {
    while (j < s.size() && is_digit(s[j])) ++j;
    return j;
  };
  size_t j = digits_from(i);
  text += s.substr(i, j - i);
  if (j - i <= 3) {
    while (j < s.size() && s[j] == ',' && digits_from(j + 1) == j + 4) {
      text += s.substr(j + 1, 3);
      j += 4;
    }
  }
  if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
    const size_t k = digits_from(j + 1);
    text += s.substr(j, k - j);
    j = k;
  }
  if (j + 1 < s.size() && (s[j] == 'e' || s[j] == 'E')) {
    const size_t sign = s[j + 1] == '+' || s[j + 1] == '-' ? j + 2 : j + 1;
    if (sign < s.size() && is_digit(s[sign])) {
      const size_t k = digits_from(sign);
      text += s.substr(j, k - j);
      j = k;
    }
  }
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return NumberAt{value, begin, j};
}

std::optional<NumberAt> first_number(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!is_digit(s[i])) continue;
    if (auto n = number_at(s, i)) return n;
    while (i + 1 < s.size() && is_digit(s[i + 1])) ++i;
  }
  return std::nullopt;
}

Result<Score> score_numeric(const ScorerSpec& spec, const ScoreInput& input) {
  auto expected = expected_of(spec, input);
  if (!expected.ok()) return expected.error();
  const Json& e = **expected;
  double want = 0;
  if (e.is_number()) {
    want = e.get<double>();
  } else {
    const std::string_view text = e.is_string() ? trim(e.get_ref<const std::string&>()) : std::string_view();
    const auto n = first_number(text);
    if (!n || n->begin != 0 || n->end != text.size()) {
      return make_error("scorer '{}': field '{}' is not a number: {}", spec.label(), spec.field, as_text(e));
    }
    want = n->value;
  }
  const auto got = first_number(input.output);
  if (!got) return binary(false, fmt::format("no number in {}", in_quotes(input.output)));
  const double allowed = std::max(spec.tolerance, spec.rel_tolerance * std::abs(want));
  const bool passed = std::abs(got->value - want) <= allowed;
  return binary(passed, passed ? "" : fmt::format("expected {} (within {}), got {}", want, allowed, got->value));
}

Result<Score> score_length(const ScorerSpec& spec, const ScoreInput& input) {
  int64_t count = 0;
  if (spec.unit == "chars") {
    count = static_cast<int64_t>(count_code_points(input.output));
  } else if (spec.unit == "words") {
    count = static_cast<int64_t>(split_words(input.output).size());
  } else if (spec.unit == "tokens") {
    count = input.output_tokens;
  } else {
    return make_error("scorer '{}': unit '{}' is not chars, words or tokens", spec.label(), spec.unit);
  }
  if (spec.min && count < *spec.min) return binary(false, fmt::format("{} {}, fewer than {}", count, spec.unit, *spec.min));
  if (spec.max && count > *spec.max) return binary(false, fmt::format("{} {}, more than {}", count, spec.unit, *spec.max));
  return binary(true, fmt::format("{} {}", count, spec.unit));
}

// ---- command --------------------------------------------------------------------------------

// The first 200 bytes of what a command wrote to stderr, for a detail.
std::string stderr_excerpt(const ProcessResult& run) {
  const std::string_view err = trim(std::string_view(run.err).substr(0, 200));
  return err.empty() ? "" : fmt::format("; stderr: '{}'", err);
}

// The command's verdict on stdout: a number in [0, 1], or {"score": x, "passed": bool, "detail": str}
// with the last two optional. The error says what is wrong with it.
Result<Score> parse_verdict(std::string_view out, double threshold) {
  const std::string_view text = trim(out);
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (!text.empty() && ec == std::errc() && ptr == text.data() + text.size()) {
    if (!(value >= 0 && value <= 1)) return make_error("score {} is outside [0, 1]", value);
    return Score{value, value >= threshold, fmt::format("score {}", value)};
  }
  const Json verdict = Json::parse(text, nullptr, false);
  if (!verdict.is_object() || !verdict.contains("score") || !verdict["score"].is_number()) {
    return make_error("stdout {} is neither a number nor {{\"score\": x}}", in_quotes(text));
  }
  value = verdict["score"].get<double>();
  if (!(value >= 0 && value <= 1)) return make_error("score {} is outside [0, 1]", value);
  Score score{value, value >= threshold, fmt::format("score {}", value)};
  if (verdict.contains("passed") && verdict["passed"].is_boolean()) score.passed = verdict["passed"].get<bool>();
  if (verdict.contains("detail") && verdict["detail"].is_string()) score.detail = verdict["detail"].get<std::string>();
  return score;
}

Result<Score> score_command(const ScorerSpec& spec, const ScoreInput& input) {
  if (spec.command.empty()) return make_error("scorer '{}': no command", spec.label());
  Json payload = Json::object();
  payload["case"] = input.case_fields;
  payload["output"] = input.output;
  auto run = run_process(spec.command, payload.dump(-1, ' ', false, Json::error_handler_t::replace), spec.timeout_s);
  if (!run.ok()) return make_error("scorer '{}': {}", spec.label(), run.message());
  if (run->timed_out) return binary(false, fmt::format("timed out after {}s", spec.timeout_s));
  if (run->signal != 0) {
    return binary(false, fmt::format("killed by signal {}{}", run->signal, stderr_excerpt(*run)));
  }
  if (run->exit_status != 0) {
    return binary(false, fmt::format("exit status {}{}", run->exit_status, stderr_excerpt(*run)));
  }
  auto verdict = parse_verdict(run->out, spec.threshold);
  if (!verdict.ok()) return binary(false, fmt::format("exit status 0, {}{}", verdict.message(), stderr_excerpt(*run)));
  return verdict;
}

Result<Score> score_by_type(const ScorerSpec& spec, const ScoreInput& input) {
  switch (spec.type) {
    case ScorerType::kExact: return score_exact(spec, input);
    case ScorerType::kContains: return score_contains(spec, input);
    case ScorerType::kRegex: return score_regex(spec, input);
    case ScorerType::kJsonValid: {
      auto output = parse_json(input.output);
      return binary(output.ok(), output.ok() ? "" : "not JSON: " + output.message());
    }
    case ScorerType::kJsonSchema: return score_json_schema(spec, input);
    case ScorerType::kJsonFields: return score_json_fields(spec, input);
    case ScorerType::kRougeL: return score_rouge_l(spec, input);
    case ScorerType::kNumeric: return score_numeric(spec, input);
    case ScorerType::kLength: return score_length(spec, input);
    case ScorerType::kCommand: return score_command(spec, input);
    case ScorerType::kChoice:
    case ScorerType::kJudge: break;
  }
  return make_error("scorer '{}': {} is computed by the runner", spec.label(), scorer_type_name(spec.type));
}

}  // namespace

const char* scorer_type_name(ScorerType type) { return kTypeNames[static_cast<size_t>(type)]; }

std::optional<ScorerType> scorer_type_from(std::string_view name) {
  for (size_t i = 0; i < std::size(kTypeNames); ++i) {
    if (name == kTypeNames[i]) return static_cast<ScorerType>(i);
  }
  return std::nullopt;
}

std::string ScorerSpec::label() const { return name.empty() ? scorer_type_name(type) : name; }

std::string normalize_text(std::string_view text, const std::vector<Normalize>& how) {
  const auto has = [&how](Normalize n) { return std::find(how.begin(), how.end(), n) != how.end(); };
  std::string out;
  if (has(Normalize::kWhitespace)) {
    for (std::string_view word : split_words(text)) out += (out.empty() ? "" : " ") + std::string(word);
  } else {
    out = has(Normalize::kTrim) ? trim(text) : text;
  }
  if (has(Normalize::kCase)) std::transform(out.begin(), out.end(), out.begin(), to_lower);
  return out;
}

// ROUGE-L (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries", section 3.1):
// P = LCS / |candidate|, R = LCS / |reference|, F1 = 2PR / (P + R), over words. The LCS table is
// kept one row at a time: O(|candidate| * |reference|) time, O(|reference|) memory.
double rouge_l(std::string_view candidate, std::string_view reference) {
  const std::string lower_candidate = normalize_text(candidate, {Normalize::kCase});
  const std::string lower_reference = normalize_text(reference, {Normalize::kCase});
  const auto c = split_words(lower_candidate);
  const auto r = split_words(lower_reference);
  if (c.empty() && r.empty()) return 1;
  if (c.empty() || r.empty()) return 0;
  std::vector<size_t> prev(r.size() + 1, 0), row(r.size() + 1, 0);
  for (const std::string_view word : c) {
    for (size_t j = 0; j < r.size(); ++j) row[j + 1] = word == r[j] ? prev[j] + 1 : std::max(prev[j + 1], row[j]);
    std::swap(prev, row);
  }
  const auto lcs = static_cast<double>(prev[r.size()]);
  if (lcs == 0) return 0;
  const double p = lcs / static_cast<double>(c.size());
  const double rec = lcs / static_cast<double>(r.size());
  return 2 * p * rec / (p + rec);
}

std::optional<Json> parse_json_output(std::string_view text) {
  auto parsed = parse_json(text);
  if (!parsed.ok()) return std::nullopt;
  return std::move(*parsed);
}

FieldMatch json_fields(const Json& expected, const Json& got) {
  const Leaves want = leaves_of(expected);
  const Leaves have = leaves_of(got);
  FieldMatch m;
  if (want.empty() && have.empty()) {
    m.precision = m.recall = m.f1 = 1;
    return m;
  }
  std::unordered_map<std::string_view, const Json*> have_at, want_at;
  for (const auto& [path, value] : have) have_at.emplace(path, value);
  for (const auto& [path, value] : want) want_at.emplace(path, value);
  size_t correct = 0;
  for (const auto& [path, value] : want) {
    const auto it = have_at.find(path);
    if (it == have_at.end()) {
      m.missing.push_back(path);
    } else if (same_value(*it->second, *value)) {
      ++correct;
    } else {
      m.wrong.push_back(path);
    }
  }
  for (const auto& [path, value] : have) {
    if (!want_at.contains(path)) m.extra.push_back(path);
  }
  const auto share = [correct](size_t of) { return of == 0 ? 0.0 : static_cast<double>(correct) / static_cast<double>(of); };
  m.precision = share(have.size());
  m.recall = share(want.size());
  m.f1 = m.precision + m.recall == 0 ? 0 : 2 * m.precision * m.recall / (m.precision + m.recall);
  return m;
}

Result<Score> score_output(const ScorerSpec& spec, const ScoreInput& input) {
  auto score = score_by_type(spec, input);
  if (!score.ok()) return score;
  score->value = std::isnan(score->value) ? 0 : std::clamp(score->value, 0.0, 1.0);
  return score;
}

Status validate_scorer(const ScorerSpec& spec) {
  const std::string label = spec.label();
  if (!(spec.threshold >= 0 && spec.threshold <= 1)) {
    return make_error("scorer '{}': threshold {} is outside [0, 1]", label, spec.threshold);
  }
  if (!(spec.weight >= 0)) return make_error("scorer '{}': weight {} is negative", label, spec.weight);
  if (!(spec.tolerance >= 0) || !(spec.rel_tolerance >= 0)) {
    return make_error("scorer '{}': tolerance {} and rel_tolerance {} must be >= 0", label, spec.tolerance,
                      spec.rel_tolerance);
  }
  if (spec.type == ScorerType::kRegex && !spec.pattern.empty()) {
    auto code = compile_regex(spec.pattern);
    if (!code.ok()) return make_error("scorer '{}': {}", label, code.message());
  }
  if (spec.type == ScorerType::kJsonSchema && !spec.schema.is_null()) {
    auto schema = compile_schema(spec.schema);
    if (!schema.ok()) return make_error("scorer '{}': {}", label, schema.message());
  }
  if (spec.type == ScorerType::kLength) {
    if (spec.unit != "chars" && spec.unit != "words" && spec.unit != "tokens") {
      return make_error("scorer '{}': unit '{}' is not chars, words or tokens", label, spec.unit);
    }
    if (spec.min && spec.max && *spec.min > *spec.max) {
      return make_error("scorer '{}': min {} is greater than max {}", label, *spec.min, *spec.max);
    }
  }
  if (spec.type == ScorerType::kCommand) {
    if (spec.command.empty() || spec.command[0].empty()) return make_error("scorer '{}': no command", label);
    if (!(spec.timeout_s > 0)) return make_error("scorer '{}': timeout_s {} must be positive", label, spec.timeout_s);
  }
  if (spec.type == ScorerType::kJudge) {
    if (spec.judge.model.empty()) return make_error("scorer '{}': the judge has no model", label);
    if (spec.judge.rubric.empty()) return make_error("scorer '{}': the judge has no rubric", label);
    if (!(spec.judge.scale > 0)) return make_error("scorer '{}': judge scale {} must be positive", label, spec.judge.scale);
    auto code = compile_regex(spec.judge.parse);
    if (!code.ok()) return make_error("scorer '{}': judge parse {}", label, code.message());
  }
  return {};
}

}  // namespace owl::eval
