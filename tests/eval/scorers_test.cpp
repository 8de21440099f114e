// The scorers of an eval suite on outputs that pass and outputs that fail, with the numbers
// worked out by hand in the comments.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "eval/scorers.h"

namespace owl::eval {
namespace {

ScorerSpec spec_of(ScorerType type) {
  ScorerSpec spec;
  spec.type = type;
  return spec;
}

// The score of `output`; a failed test when the scorer returns an error.
Score score(const ScorerSpec& spec, const Json& fields, const std::string& output, int64_t tokens = 0) {
  auto r = score_output(spec, ScoreInput{.case_fields = fields, .output = output, .output_tokens = tokens});
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? *r : Score{-1, false, "error"};
}

std::string error_of(const ScorerSpec& spec, const Json& fields, const std::string& output) {
  auto r = score_output(spec, ScoreInput{.case_fields = fields, .output = output});
  EXPECT_FALSE(r.ok()) << "scored " << r->value;
  return r.ok() ? "" : r.message();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Scorers, TypeNamesRoundTrip) {
  const char* names[] = {"exact",   "contains", "regex",   "json_valid", "json_schema", "json_fields",
                         "choice",  "rouge_l",  "numeric", "length",     "judge",       "command"};
  for (const char* name : names) {
    const auto type = scorer_type_from(name);
    ASSERT_TRUE(type.has_value()) << name;
    EXPECT_STREQ(scorer_type_name(*type), name);
  }
  EXPECT_EQ(scorer_type_from("rouge"), std::nullopt);
  EXPECT_EQ(scorer_type_from("Exact"), std::nullopt);
  ScorerSpec spec = spec_of(ScorerType::kRougeL);
  EXPECT_EQ(spec.label(), "rouge_l");
  spec.name = "summary";
  EXPECT_EQ(spec.label(), "summary");
}

TEST(Scorers, NormalizeText) {
  const std::string text = "  Hello \t  World\n";
  EXPECT_EQ(normalize_text(text, {}), text);
  EXPECT_EQ(normalize_text(text, {Normalize::kTrim}), "Hello \t  World");
  EXPECT_EQ(normalize_text(text, {Normalize::kCase}), "  hello \t  world\n");
  EXPECT_EQ(normalize_text(text, {Normalize::kWhitespace}), "Hello World");
  EXPECT_EQ(normalize_text(text, {Normalize::kTrim, Normalize::kCase, Normalize::kWhitespace}), "hello world");
  EXPECT_EQ(normalize_text("ÉTÉ", {Normalize::kCase}), "ÉtÉ");  // ASCII only: É stays
  EXPECT_EQ(normalize_text(" \n ", {Normalize::kWhitespace}), "");
}

TEST(Scorers, Exact) {
  const Json fields = {{"expected", "Lily"}};
  ScorerSpec spec = spec_of(ScorerType::kExact);
  Score s = score(spec, fields, "Lily");
  EXPECT_EQ(s.value, 1.0);
  EXPECT_TRUE(s.passed);
  s = score(spec, fields, "Tom");
  EXPECT_EQ(s.value, 0.0);
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.detail, "expected 'Lily', got 'Tom'");
  EXPECT_FALSE(score(spec, fields, " lily\n").passed);
  spec.normalize = {Normalize::kTrim, Normalize::kCase};
  EXPECT_TRUE(score(spec, fields, " lily\n").passed);
  EXPECT_FALSE(score(spec, fields, "li ly").passed);
}

TEST(Scorers, ExactAgainstAnyOfAList) {
  ScorerSpec spec = spec_of(ScorerType::kExact);
  spec.normalize = {Normalize::kCase, Normalize::kWhitespace};
  const Json fields = {{"expected", {"Paris", "Paris, France"}}};
  EXPECT_TRUE(score(spec, fields, "paris,   france ").passed);
  EXPECT_TRUE(score(spec, fields, "PARIS").passed);
  const Score s = score(spec, fields, "Lyon");
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.detail, "expected one of 'Paris', 'Paris, France', got 'Lyon'");
  EXPECT_FALSE(score(spec, {{"expected", Json::array()}}, "").passed);
}

TEST(Scorers, ExactComparesOtherValuesByTheirJson) {
  ScorerSpec spec = spec_of(ScorerType::kExact);
  spec.normalize = {Normalize::kTrim};
  EXPECT_TRUE(score(spec, {{"expected", 42}}, "42\n").passed);
  EXPECT_FALSE(score(spec, {{"expected", 42}}, "42.0").passed);
  EXPECT_TRUE(score(spec, {{"expected", true}}, "true").passed);
  spec.field = "answer";
  EXPECT_TRUE(score(spec, {{"answer", {1, 2}}}, "1").passed);  // a list: any element
}

TEST(Scorers, MissingFieldIsAnErrorNamingScorerAndField) {
  ScorerSpec spec = spec_of(ScorerType::kContains);
  spec.name = "mentions-city";
  spec.field = "city";
  const std::string message = error_of(spec, {{"expected", "Paris"}}, "Paris");
  EXPECT_TRUE(has(message, "mentions-city")) << message;
  EXPECT_TRUE(has(message, "'city'")) << message;
  for (ScorerType type : {ScorerType::kExact, ScorerType::kRegex, ScorerType::kJsonFields, ScorerType::kRougeL,
                          ScorerType::kNumeric, ScorerType::kJsonSchema}) {
    error_of(spec_of(type), Json::object(), "x");
  }
}

TEST(Scorers, Contains) {
  ScorerSpec spec = spec_of(ScorerType::kContains);
  const Json fields = {{"expected", "paris"}};
  EXPECT_FALSE(score(spec, fields, "The capital is Paris.").passed);
  spec.normalize = {Normalize::kCase};
  EXPECT_TRUE(score(spec, fields, "The capital is Paris.").passed);
  const Score s = score(spec, fields, "The capital is Lyon.");
  EXPECT_EQ(s.value, 0.0);
  EXPECT_EQ(s.detail, "does not contain 'paris'");
}

// Two of three contained: 2/3, which fails at the default threshold of 1 and passes at 0.6.
TEST(Scorers, ContainsAllOfAList) {
  ScorerSpec spec = spec_of(ScorerType::kContains);
  const Json fields = {{"expected", {"Paris", "France", "Berlin"}}};
  Score s = score(spec, fields, "Paris is in France");
  EXPECT_NEAR(s.value, 2.0 / 3.0, 1e-12);
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.detail, "does not contain 'Berlin'");
  spec.threshold = 0.6;
  EXPECT_TRUE(score(spec, fields, "Paris is in France").passed);
  s = score(spec, fields, "Paris, France and Berlin");
  EXPECT_EQ(s.value, 1.0);
  EXPECT_TRUE(s.passed);
}

TEST(Scorers, Regex) {
  ScorerSpec spec = spec_of(ScorerType::kRegex);
  spec.pattern = R"(\b\d{3}-\d{4}\b)";
  const Json none = Json::object();
  EXPECT_TRUE(score(spec, none, "call 555-0199 now").passed);
  const Score s = score(spec, none, "call 5550199 now");
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.value, 0.0);
  // The pattern from the case when the spec has none; UTF mode: '.' is one code point.
  spec.pattern.clear();
  EXPECT_TRUE(score(spec, {{"expected", "^.{3}$"}}, "été").passed);
  EXPECT_FALSE(score(spec, {{"expected", "^.{3}$"}}, "ete!").passed);
  EXPECT_FALSE(score(spec, {{"expected", "^a"}}, std::string("\xff\xfe", 2)).passed);  // invalid UTF-8: no match
  EXPECT_TRUE(has(error_of(spec, {{"expected", 3}}, "3"), "not a string"));
}

TEST(Scorers, RegexThatDoesNotCompileIsAnError) {
  ScorerSpec spec = spec_of(ScorerType::kRegex);
  spec.pattern = "(abc";
  const std::string message = error_of(spec, Json::object(), "abc");
  EXPECT_TRUE(has(message, "'(abc'")) << message;
  EXPECT_TRUE(has(message, "offset 4")) << message;
  EXPECT_TRUE(has(message, "missing closing parenthesis")) << message;
  const auto status = validate_scorer(spec);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(has(status.message(), "(abc")) << status.message();
}

// (a+)+$ against a run of a's that ends in something else tries every split of the run: 2^40
// steps without the match limit.
TEST(Scorers, CatastrophicRegexStopsAtTheMatchLimit) {
  ScorerSpec spec = spec_of(ScorerType::kRegex);
  spec.pattern = "(a+)+$";
  const auto start = std::chrono::steady_clock::now();
  const Score s = score(spec, Json::object(), std::string(40, 'a') + "!");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(has(s.detail, "limit")) << s.detail;
  EXPECT_LT(seconds, 2.0);
}

TEST(Scorers, JsonValid) {
  const ScorerSpec spec = spec_of(ScorerType::kJsonValid);
  const Json none = Json::object();
  EXPECT_TRUE(score(spec, none, " {\"a\": [1, 2]}\n").passed);
  EXPECT_TRUE(score(spec, none, "```json\n{\"a\": 1}\n```").passed);
  EXPECT_TRUE(score(spec, none, "\n```\n[1, 2]\n```\n").passed);
  EXPECT_TRUE(score(spec, none, "\"just a string\"").passed);
  const Score s = score(spec, none, "{\"a\": 1,}");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(s.detail.starts_with("not JSON: ")) << s.detail;
  EXPECT_FALSE(score(spec, none, "").passed);
  EXPECT_FALSE(score(spec, none, "{} {}").passed);  // two values
  EXPECT_FALSE(score(spec, none, "Here it is: {\"a\": 1}").passed);
  EXPECT_FALSE(score(spec, none, "```python\n{}\n```").passed);
  EXPECT_EQ(parse_json_output("```JSON\n{\"b\": 2, \"a\": 1}\n```").value().dump(), R"({"b":2,"a":1})");
  EXPECT_EQ(parse_json_output("```json {\"a\": 1} ```").value()["a"], 1);
  EXPECT_FALSE(parse_json_output("```json\n{\"a\": 1}").has_value());  // unclosed fence
}

const Json kPersonSchema = Json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 18},
    "address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}
  },
  "required": ["name", "age"]
})");

TEST(Scorers, JsonSchema) {
  ScorerSpec spec = spec_of(ScorerType::kJsonSchema);
  spec.schema = kPersonSchema;
  const Json none = Json::object();
  EXPECT_TRUE(score(spec, none, R"({"name": "Lily", "age": 30})").passed);
  Score s = score(spec, none, R"({"name": "Lily", "age": 12})");
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.value, 0.0);
  EXPECT_TRUE(s.detail.starts_with("$.age: ")) << s.detail;
  EXPECT_TRUE(has(s.detail, "greater than or equal to 18")) << s.detail;
  s = score(spec, none, R"({"name": "Lily", "age": 30, "address": {"zip": "7500"}})");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(s.detail.starts_with("$.address.zip: ")) << s.detail;
  s = score(spec, none, R"({"age": 30})");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(has(s.detail, "name")) << s.detail;
  s = score(spec, none, "{\"name\": ");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(s.detail.starts_with("not JSON: ")) << s.detail;
}

// A $ref chain that only leads back to itself is refused (valijson would recurse without end); a
// recursive schema that descends into the value is fine.
TEST(Scorers, JsonSchemaRefCycles) {
  ScorerSpec spec = spec_of(ScorerType::kJsonSchema);
  for (const char* cyclic : {R"({"$ref": "#"})", R"({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"})",
                             R"({"properties": {"x": {"$ref": "#/properties/x"}}})"}) {
    spec.schema = Json::parse(cyclic);
    const auto v = validate_scorer(spec);
    ASSERT_FALSE(v.ok()) << cyclic;
    EXPECT_TRUE(has(v.message(), "leads back to itself")) << v.message();
  }
  spec.schema = Json::parse(R"({"type": "object", "properties": {"child": {"$ref": "#"}, "n": {"type": "integer"}}})");
  ASSERT_TRUE(validate_scorer(spec).ok());
  EXPECT_TRUE(score(spec, Json::object(), R"({"n": 1, "child": {"n": 2, "child": {}}})").passed);
  EXPECT_FALSE(score(spec, Json::object(), R"({"n": 1, "child": {"n": "two"}})").passed);
}

TEST(Scorers, JsonSchemaFromTheCase) {
  ScorerSpec spec = spec_of(ScorerType::kJsonSchema);
  spec.field = "schema";
  const Json fields = {{"schema", {{"type", "array"}, {"items", {{"type", "number"}}}}}};
  EXPECT_TRUE(score(spec, fields, "[1, 2.5]").passed);
  const Score s = score(spec, fields, "[1, \"two\"]");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(s.detail.starts_with("$[1]: ")) << s.detail;
  const std::string message = error_of(spec, {{"schema", {{"type", 5}}}}, "[]");
  EXPECT_TRUE(has(message, "schema")) << message;
}

// expected leaves: name, age, address.city, address.zip, tags (5);
// got leaves: name, age (wrong), address.city, address.country (extra), tags, pet (extra) (6).
// Correct: name, address.city, tags = 3. P = 3/6, R = 3/5, F1 = 2 · 0.5 · 0.6 / 1.1 = 6/11.
TEST(Scorers, JsonFieldsOnANestedObject) {
  const Json expected = Json::parse(
      R"({"name": "Lily", "age": 5, "address": {"city": "Paris", "zip": "75001"}, "tags": ["a", "b"]})");
  const Json got = Json::parse(
      R"({"pet": "dog", "name": "Lily", "age": 6, "address": {"country": "FR", "city": "Paris"}, "tags": ["a", "b"]})");
  const FieldMatch m = json_fields(expected, got);
  EXPECT_DOUBLE_EQ(m.precision, 0.5);
  EXPECT_DOUBLE_EQ(m.recall, 0.6);
  EXPECT_NEAR(m.f1, 6.0 / 11.0, 1e-12);
  EXPECT_EQ(m.missing, std::vector<std::string>{"address.zip"});
  EXPECT_EQ(m.wrong, std::vector<std::string>{"age"});
  EXPECT_EQ(m.extra, (std::vector<std::string>{"pet", "address.country"}));

  ScorerSpec spec = spec_of(ScorerType::kJsonFields);
  spec.threshold = 0.5;
  const Score s = score(spec, {{"expected", expected}}, "```json\n" + got.dump() + "\n```");
  EXPECT_NEAR(s.value, 6.0 / 11.0, 1e-12);
  EXPECT_TRUE(s.passed);
  EXPECT_EQ(s.detail, "precision 0.50, recall 0.60; missing address.zip; wrong age; extra pet, address.country");
  spec.threshold = 0.6;
  EXPECT_FALSE(score(spec, {{"expected", expected}}, got.dump()).passed);
}

TEST(Scorers, JsonFieldsEdges) {
  // Arrays are whole values: order matters. Object keys' order does not, nor 1 against 1.0.
  FieldMatch m = json_fields({{"tags", {"a", "b"}}, {"n", 1}}, {{"n", 1.0}, {"tags", {"b", "a"}}});
  EXPECT_EQ(m.wrong, std::vector<std::string>{"tags"});
  EXPECT_DOUBLE_EQ(m.f1, 0.5);
  m = json_fields({{"list", {{{"x", 1}, {"y", 2}}}}}, {{"list", {{{"y", 2}, {"x", 1}}}}});
  EXPECT_DOUBLE_EQ(m.f1, 1.0);
  m = json_fields(Json::object(), Json::object());
  EXPECT_EQ(m.precision, 1.0);
  EXPECT_EQ(m.recall, 1.0);
  EXPECT_EQ(m.f1, 1.0);
  m = json_fields({{"a", 1}}, Json::object());
  EXPECT_EQ(m.f1, 0.0);
  EXPECT_EQ(m.missing, std::vector<std::string>{"a"});
  m = json_fields({{"a", 1}}, Json::array({1}));  // not an object: one leaf, "$"
  EXPECT_EQ(m.extra, std::vector<std::string>{"$"});

  ScorerSpec spec = spec_of(ScorerType::kJsonFields);
  const Score s = score(spec, {{"expected", {{"a", 1}}}}, "a = 1");
  EXPECT_EQ(s.value, 0.0);
  EXPECT_TRUE(s.detail.starts_with("not JSON: ")) << s.detail;
  EXPECT_TRUE(has(error_of(spec, {{"expected", "a"}}, "{}"), "not a JSON object"));
}

// "the cat sat on the mat" (6 words) against "the cat on the mat" (5): LCS "the cat on the mat"
// = 5; P = 5/6, R = 5/5, F1 = 2 · (5/6) / (11/6) = 10/11.
TEST(Scorers, RougeL) {
  EXPECT_NEAR(rouge_l("the cat sat on the mat", "the cat on the mat"), 10.0 / 11.0, 1e-12);
  EXPECT_NEAR(rouge_l("the cat on the mat", "the cat sat on the mat"), 10.0 / 11.0, 1e-12);
  // "a b c d" against "b d e": LCS "b d" = 2; P = 1/2, R = 2/3, F1 = (2/3) / (7/6) = 4/7.
  EXPECT_NEAR(rouge_l("a b c d", "b  d\te"), 4.0 / 7.0, 1e-12);
  EXPECT_EQ(rouge_l("The CAT", "the cat"), 1.0);
  EXPECT_EQ(rouge_l("x y", "a b"), 0.0);
  EXPECT_EQ(rouge_l("", "  "), 1.0);
  EXPECT_EQ(rouge_l("", "a"), 0.0);
  EXPECT_EQ(rouge_l("a", ""), 0.0);

  ScorerSpec spec = spec_of(ScorerType::kRougeL);
  spec.threshold = 0.5;
  Score s = score(spec, {{"expected", "b d e"}}, "a b c d");
  EXPECT_NEAR(s.value, 4.0 / 7.0, 1e-12);
  EXPECT_TRUE(s.passed);
  spec.threshold = 0.6;
  EXPECT_FALSE(score(spec, {{"expected", "b d e"}}, "a b c d").passed);
  // Several references: the best.
  s = score(spec, {{"expected", {"x y z", "the cat on the mat"}}}, "the cat sat on the mat");
  EXPECT_NEAR(s.value, 10.0 / 11.0, 1e-12);
}

TEST(Scorers, NumericWithToleranceAndThousands) {
  ScorerSpec spec = spec_of(ScorerType::kNumeric);
  EXPECT_TRUE(score(spec, {{"expected", 1234.5}}, "The answer is 1,234.5 dollars.").passed);
  EXPECT_TRUE(score(spec, {{"expected", "12,345,678"}}, "12345678").passed);
  EXPECT_TRUE(score(spec, {{"expected", -350}}, "it is -3.5e2 now").passed);
  EXPECT_TRUE(score(spec, {{"expected", 42}}, "42.").passed);
  // Not thousands: "1,23" is 1, "1234,567" is 1234.
  EXPECT_TRUE(score(spec, {{"expected", 1}}, "1,23").passed);
  EXPECT_TRUE(score(spec, {{"expected", 1234}}, "1234,567").passed);
  // |1234.5 - 1234| = 0.5.
  spec.tolerance = 0.4;
  Score s = score(spec, {{"expected", "1234"}}, "about 1,234.5");
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.value, 0.0);
  EXPECT_EQ(s.detail, "expected 1234 (within 0.4), got 1234.5");
  spec.tolerance = 0.5;
  EXPECT_TRUE(score(spec, {{"expected", "1234"}}, "about 1,234.5").passed);
  // Relative: 1% of 100 is 1.
  spec.tolerance = 0;
  spec.rel_tolerance = 0.01;
  EXPECT_TRUE(score(spec, {{"expected", 100}}, "about 100.9").passed);
  EXPECT_FALSE(score(spec, {{"expected", 100}}, "about 101.5").passed);
  s = score(spec, {{"expected", 100}}, "a hundred");
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.detail, "no number in 'a hundred'");
  EXPECT_TRUE(has(error_of(spec, {{"expected", "about 3"}}, "3"), "not a number"));
  EXPECT_TRUE(has(error_of(spec, {{"expected", Json::array()}}, "3"), "not a number"));
}

TEST(Scorers, LengthInCharsWordsAndTokens) {
  ScorerSpec spec = spec_of(ScorerType::kLength);
  const std::string text = "héllo wörld";  // 13 bytes, 11 code points
  ASSERT_EQ(text.size(), 13u);
  spec.min = 11;
  spec.max = 11;
  EXPECT_TRUE(score(spec, Json::object(), text).passed);
  spec.max = 10;
  Score s = score(spec, Json::object(), text);
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.value, 0.0);
  EXPECT_EQ(s.detail, "11 chars, more than 10");
  spec.unit = "words";
  spec.min = 4;
  spec.max = std::nullopt;
  s = score(spec, Json::object(), "  one two\tthree\n");
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.detail, "3 words, fewer than 4");
  EXPECT_TRUE(score(spec, Json::object(), "one two three four").passed);
  spec.unit = "tokens";
  spec.min = 2;
  spec.max = 5;
  EXPECT_TRUE(score(spec, Json::object(), "x", 5).passed);
  EXPECT_FALSE(score(spec, Json::object(), "x y z", 1).passed);
  spec.unit = "lines";
  EXPECT_TRUE(has(error_of(spec, Json::object(), "x"), "unit 'lines'"));
}

ScorerSpec shell(const std::string& script, double threshold = 1, double timeout_s = 10) {
  ScorerSpec spec = spec_of(ScorerType::kCommand);
  spec.command = {"/bin/sh", "-c", script};
  spec.threshold = threshold;
  spec.timeout_s = timeout_s;
  return spec;
}

// After a command scorer, no child of ours is left, neither running nor a zombie.
void expect_no_children() {
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Scorers, CommandGivesAScore) {
  const Json fields = {{"expected", "Paris"}};
  Score s = score(shell("cat >/dev/null; echo 0.75", 0.5), fields, "Paris");
  EXPECT_EQ(s.value, 0.75);
  EXPECT_TRUE(s.passed);
  EXPECT_FALSE(score(shell("cat >/dev/null; echo 0.75"), fields, "Paris").passed);  // threshold 1
  // The case and the output arrive as JSON on stdin.
  const std::string check =
      R"(in=$(cat); case "$in" in *'"case":{"expected":"Paris"}'*'"output":"Paris!"'*) )"
      R"(echo '{"score": 1, "detail": "found"}';; *) echo 0;; esac)";
  s = score(shell(check), fields, "Paris!");
  EXPECT_EQ(s.value, 1.0);
  EXPECT_TRUE(s.passed);
  EXPECT_EQ(s.detail, "found");
  // Its "passed" wins over the threshold.
  s = score(shell(R"(echo '{"score": 0.2, "passed": true}')"), fields, "x");
  EXPECT_EQ(s.value, 0.2);
  EXPECT_TRUE(s.passed);
  expect_no_children();
}

TEST(Scorers, CommandFailures) {
  const Json fields = {{"expected", "Paris"}};
  Score s = score(shell("cat >/dev/null; echo 'no such city' >&2; exit 3"), fields, "x");
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.value, 0.0);
  EXPECT_EQ(s.detail, "exit status 3; stderr: 'no such city'");
  s = score(shell("echo maybe"), fields, "x");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(has(s.detail, "exit status 0")) << s.detail;
  EXPECT_TRUE(has(s.detail, "'maybe'")) << s.detail;
  s = score(shell("echo 7"), fields, "x");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(has(s.detail, "outside [0, 1]")) << s.detail;
  s = score(shell("kill -9 $$"), fields, "x");
  EXPECT_FALSE(s.passed);
  EXPECT_TRUE(has(s.detail, "signal 9")) << s.detail;
  ScorerSpec missing = spec_of(ScorerType::kCommand);
  missing.command = {"/nonexistent/owl-scorer"};
  EXPECT_TRUE(has(error_of(missing, fields, "x"), "/nonexistent/owl-scorer"));
  expect_no_children();
}

TEST(Scorers, CommandIsKilledAtItsTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const Score s = score(shell("sleep 5; echo 1", 1, 0.5), Json::object(), "x");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.detail, "timed out after 0.5s");
  EXPECT_GE(seconds, 0.5);
  EXPECT_LT(seconds, 2.0);
  expect_no_children();
}

// True once `pid` has ended: gone, or a zombie waiting for its new parent to reap it.
bool ended(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// The timeout kills what the command started too, not only the shell.
TEST(Scorers, CommandTimeoutKillsItsChildren) {
  const std::string pid_file = testing::TempDir() + "owl_scorer_child_" + std::to_string(getpid());
  const Score s = score(shell("sleep 30 & echo $! > " + pid_file + "; wait", 1, 0.5), Json::object(), "x");
  EXPECT_EQ(s.detail, "timed out after 0.5s");
  pid_t child = 0;
  std::ifstream(pid_file) >> child;
  std::remove(pid_file.c_str());
  ASSERT_GT(child, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!ended(child) && std::chrono::steady_clock::now() < deadline) usleep(10'000);
  EXPECT_TRUE(ended(child)) << "sleep " << child << " still runs";
  expect_no_children();
}

// 4 MB does not fit in a pipe: the write meets a closed pipe (EPIPE), which must neither kill
// the test with SIGPIPE nor fail the score.
TEST(Scorers, CommandThatDoesNotReadItsStdin) {
  const std::string output(4 << 20, 'x');
  const Score s = score(shell("echo 1"), Json::object(), output);
  EXPECT_EQ(s.value, 1.0);
  EXPECT_TRUE(s.passed);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
  expect_no_children();
}

TEST(Scorers, ChoiceAndJudgeAreTheRunners) {
  for (ScorerType type : {ScorerType::kChoice, ScorerType::kJudge}) {
    const std::string message = error_of(spec_of(type), {{"expected", "A"}}, "A");
    EXPECT_TRUE(has(message, "computed by the runner")) << message;
  }
}

TEST(Scorers, Validate) {
  EXPECT_TRUE(validate_scorer(spec_of(ScorerType::kExact)).ok());
  ScorerSpec spec = spec_of(ScorerType::kContains);
  spec.threshold = 1.5;
  EXPECT_TRUE(has(validate_scorer(spec).message(), "threshold 1.5"));
  spec = spec_of(ScorerType::kExact);
  spec.weight = -1;
  EXPECT_TRUE(has(validate_scorer(spec).message(), "weight -1"));
  spec = spec_of(ScorerType::kNumeric);
  spec.tolerance = -0.1;
  EXPECT_FALSE(validate_scorer(spec).ok());
  spec = spec_of(ScorerType::kJsonSchema);
  spec.schema = kPersonSchema;
  EXPECT_TRUE(validate_scorer(spec).ok());
  spec.schema = {{"type", "object"}, {"required", "name"}};
  EXPECT_TRUE(has(validate_scorer(spec).message(), "schema")) << validate_scorer(spec).message();
  spec = spec_of(ScorerType::kLength);
  spec.min = 5;
  spec.max = 3;
  EXPECT_TRUE(has(validate_scorer(spec).message(), "min 5"));
  spec = spec_of(ScorerType::kCommand);
  EXPECT_TRUE(has(validate_scorer(spec).message(), "no command"));
  spec.command = {"true"};
  EXPECT_TRUE(validate_scorer(spec).ok());
  spec = spec_of(ScorerType::kJudge);
  EXPECT_TRUE(has(validate_scorer(spec).message(), "no model"));
  spec.judge.model = "judge.gguf";
  EXPECT_TRUE(has(validate_scorer(spec).message(), "no rubric"));
  spec.judge.rubric = "Rate {{output}} from 0 to 10.";
  EXPECT_TRUE(validate_scorer(spec).ok());
}

}  // namespace
}  // namespace owl::eval
