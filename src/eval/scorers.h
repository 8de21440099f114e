// The scorers of an eval suite (docs/eval.md): each compares one output of a model with what the
// case expects and gives a score in [0, 1] and a pass. Scorers that need a model (`choice`,
// `judge`) are computed by the runner (eval/runner.h) and only their specs live here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace owl::eval {

using Json = nlohmann::ordered_json;

enum class ScorerType {
  kExact, kContains, kRegex, kJsonValid, kJsonSchema, kJsonFields, kChoice, kRougeL, kNumeric, kLength,
  kJudge, kCommand
};
const char* scorer_type_name(ScorerType type);  // "exact", "contains", ...
std::optional<ScorerType> scorer_type_from(std::string_view name);

enum class Normalize { kTrim, kCase, kWhitespace };

struct JudgeSpec {
  std::string model;        // a candidate-like model: a GGUF path, or a hosted model (base_url + model)
  std::string base_url;
  std::string api_key_env;
  std::string rubric;       // the prompt; {{output}}, {{expected}} and the case's variables are filled in
  std::string parse = R"((\d+(?:\.\d+)?))";  // ECMAScript regex; group 1 is the number the judge gave
  double scale = 10;        // the judge's number / scale is the score
  int64_t max_tokens = 64;
};

struct ScorerSpec {
  ScorerType type = ScorerType::kExact;
  std::string name;          // how reports call it: `name`, else the type's name
  double weight = 1;
  bool required = false;     // a gate: the case fails when this scorer fails, whatever the others
  double threshold = 1;      // the scorer passes when score >= threshold (rouge_l: 0.5 unless given)
  std::string field = "expected";  // the case field compared with
  std::vector<Normalize> normalize;  // exact, contains, choice: applied to both sides
  std::string pattern;       // regex: PCRE2 the output must match (the expected value when empty)
  Json schema;               // json_schema: draft-07 JSON Schema (the case field when null)
  std::vector<std::string> labels;  // choice: the labels (the case's `choices` field when empty)
  double tolerance = 0;      // numeric: |output - expected| <= tolerance (absolute)
  double rel_tolerance = 0;  //          or <= rel_tolerance * |expected|
  std::optional<int64_t> min, max;  // length: bounds
  std::string unit = "chars";       // length: chars (UTF-8 code points), words or tokens
  std::vector<std::string> command; // command: argv; the case and output as JSON on stdin
  double timeout_s = 30;            // command
  JudgeSpec judge;
  std::string label() const;  // name or the type's name
};

// What one scorer said of one output.
struct Score {
  double value = 0;      // in [0, 1]
  bool passed = false;
  std::string detail;    // why, for the report: "expected 'Lily', got 'Tom'", "$.age: 3 is less than minimum 18"
};

// What a scorer sees: the case (its variables and expected values, as one JSON object), the
// output, and for `length` in tokens the output's token count.
struct ScoreInput {
  const Json& case_fields;
  const std::string& output;
  int64_t output_tokens = 0;
};

// Scores `input` with any scorer but choice and judge (those need a model: the runner's). An
// error is a mistake of the suite, not of the output (a case lacking the field the scorer
// compares with, a schema that does not compile); a bad output is a failing Score.
core::Result<Score> score_output(const ScorerSpec& spec, const ScoreInput& input);

// Checks what can be checked before any model runs (the regex and schema compile, the command
// is given, bounds are ordered); the error names what is wrong.
core::Status validate_scorer(const ScorerSpec& spec);

// Building blocks, exposed for tests.
std::string normalize_text(std::string_view text, const std::vector<Normalize>& how);
// ROUGE-L F1 (beta = 1) over whitespace-separated, lower-cased words.
double rouge_l(std::string_view candidate, std::string_view reference);
// `text` as one JSON value (leading/trailing whitespace and a ```json fence allowed); nullopt when
// it is not exactly one.
std::optional<Json> parse_json_output(std::string_view text);
// Field-level precision, recall and F1 of `got` against `expected` (objects; nested objects are
// compared by their leaf paths, arrays as whole values).
struct FieldMatch {
  double precision = 0, recall = 0, f1 = 0;
  std::vector<std::string> missing, wrong, extra;  // leaf paths
};
FieldMatch json_fields(const Json& expected, const Json& got);

}  // namespace owl::eval
