#include "constrain/json_schema.h"

#include <regex>

#include <gtest/gtest.h>

#include "constrain/matcher.h"

namespace owl::constrain {
namespace {

using Json = nlohmann::ordered_json;

std::shared_ptr<const Grammar> schema_grammar(const std::string& schema) {
  auto gbnf = json_schema_to_gbnf(Json::parse(schema));
  EXPECT_TRUE(gbnf.ok()) << gbnf.message();
  if (!gbnf.ok()) return nullptr;
  auto g = Grammar::parse(*gbnf);
  EXPECT_TRUE(g.ok()) << g.message() << "\n" << *gbnf;
  return g.ok() ? *g : nullptr;
}

bool matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  Matcher m(g);
  return m.feed(text) && m.accepted();
}

std::string schema_error(const std::string& schema) {
  auto gbnf = json_schema_to_gbnf(Json::parse(schema));
  EXPECT_FALSE(gbnf.ok()) << schema;
  return gbnf.ok() ? "" : gbnf.message();
}

TEST(JsonSchema, KeywordsItCannotEnforceAreRefusedWithTheirPointer) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type":"object","properties":{"a":{"not":{"type":"string"}}}})", "'not' at /properties/a/not"},
      {R"({"type":"array","uniqueItems":true})", "'uniqueItems' at /uniqueItems"},
      {R"({"patternProperties":{"^x":{}}})", "'patternProperties' at /patternProperties"},
      {R"({"type":"string","format":"hostname"})", "format \"hostname\""},
      {R"({"type":"number","minimum":0})", "'minimum' on a number"},
      {R"({"type":"number","multipleOf":2})", "'multipleOf'"},
      {R"({"type":"string","pattern":"(?=a)b"})", "lookaround"},
      {R"({"type":"string","pattern":"(a)\\1"})", "back-references"},
      {R"({"$ref":"http://example.com/s.json"})", "not a local reference"},
      {R"({"$ref":"#/$defs/missing"})", "does not resolve"},
      {R"({"type":"integer","minimum":5,"maximum":4})", "no integer"},
      {R"({"type":"object","properties":{"a":{"type":"widget"}}})", "unknown type 'widget' at /properties/a/type"},
      {R"({"type":"object","required":["b"],"properties":{"a":{}}})", "required property 'b'"},
      {R"({"anyOf":[{"type":"string"}],"minLength":2})", "beside 'anyOf'"},
      {R"(false)", "nothing validates"},
      {R"({"$ref":"#/$defs/x","$defs":{"x":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/x"}]}}})", "refers to itself"},
  };
  for (const auto& [schema, expected] : cases) {
    EXPECT_NE(schema_error(schema).find(expected), std::string::npos) << schema << " -> " << schema_error(schema);
  }
}

TEST(JsonSchema, ObjectsFollowThePropertyOrderAndRequiredKeys) {
  auto g = schema_grammar(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
                             "ok":{"type":"boolean"}},"required":["name","ok"]})");
  EXPECT_TRUE(matches(g, R"({"name":"Ann","age":3,"ok":true})"));
  EXPECT_TRUE(matches(g, R"({"name":"Ann","ok":false})"));
  EXPECT_TRUE(matches(g, "{\n  \"name\": \"A\\\"nn\",\n  \"ok\": false\n}"));
  EXPECT_FALSE(matches(g, R"({"age":3,"name":"Ann","ok":true})"));  // order
  EXPECT_FALSE(matches(g, R"({"name":"Ann"})"));                   // required
  EXPECT_FALSE(matches(g, R"({"name":"Ann","ok":true,"x":1})"));    // no other keys
  EXPECT_FALSE(matches(g, R"({"name":"Ann","age":3.5,"ok":true})"));
  EXPECT_FALSE(matches(g, R"({"name":"Ann","ok":true,})"));
  auto none_required = schema_grammar(R"({"properties":{"a":{"const":1},"b":{"const":2}}})");
  for (const char* ok : {"{}", R"({"a":1})", R"({"b":2})", R"({"a":1,"b":2})"}) EXPECT_TRUE(matches(none_required, ok)) << ok;
  EXPECT_FALSE(matches(none_required, R"({,"b":2})"));
  EXPECT_FALSE(matches(none_required, R"({"a":1,})"));
}

TEST(JsonSchema, AdditionalPropertiesNeverRepeatADeclaredName) {
  auto g = schema_grammar(R"({"properties":{"id":{"type":"integer"}},"additionalProperties":{"type":"string"}})");
  EXPECT_TRUE(matches(g, R"({"id":1,"idx":"a","i":"b","":"c"})"));
  EXPECT_TRUE(matches(g, R"({"other":"x"})"));
  EXPECT_FALSE(matches(g, R"({"id":1,"id":"x"})"));
  EXPECT_FALSE(matches(g, R"({"other":1})"));
}

TEST(JsonSchema, IntegerBoundsAreExact) {
  const std::pair<const char*, std::pair<long, long>> cases[] = {
      {R"({"type":"integer","minimum":-123,"maximum":4567})", {-123, 4567}},
      {R"({"type":"integer","minimum":7,"maximum":7})", {7, 7}},
      {R"({"type":"integer","minimum":0,"maximum":99})", {0, 99}},
      {R"({"type":"integer","minimum":-50,"maximum":-3})", {-50, -3}},
      {R"({"type":"integer","exclusiveMinimum":94.5,"exclusiveMaximum":1000})", {95, 999}},
      {R"({"type":"integer","minimum":95})", {95, 1L << 40}},
      {R"({"type":"integer","maximum":-7})", {-(1L << 40), -7}},
  };
  for (const auto& [schema, range] : cases) {
    auto g = schema_grammar(schema);
    for (long x = -3000; x <= 12000; ++x) {
      ASSERT_EQ(matches(g, std::to_string(x)), x >= range.first && x <= range.second) << schema << " " << x;
    }
    EXPECT_FALSE(matches(g, "007")) << schema;
    EXPECT_FALSE(matches(g, "-0")) << schema;
  }
}

TEST(JsonSchema, Formats) {
  auto date = schema_grammar(R"({"type":"string","format":"date"})");
  EXPECT_TRUE(matches(date, "\"2024-02-28\""));
  EXPECT_TRUE(matches(date, "\"1999-12-31\""));
  EXPECT_FALSE(matches(date, "\"2024-02-30\""));
  EXPECT_FALSE(matches(date, "\"2024-04-31\""));
  EXPECT_FALSE(matches(date, "\"2024-13-01\""));
  auto dt = schema_grammar(R"({"type":"string","format":"date-time"})");
  EXPECT_TRUE(matches(dt, "\"2024-05-06T07:08:09Z\""));
  EXPECT_TRUE(matches(dt, "\"2024-05-06T23:59:59.123+05:30\""));
  EXPECT_FALSE(matches(dt, "\"2024-05-06T24:00:00Z\""));
  auto ip = schema_grammar(R"({"type":"string","format":"ipv4"})");
  EXPECT_TRUE(matches(ip, "\"255.0.10.1\""));
  EXPECT_FALSE(matches(ip, "\"256.1.1.1\""));
  EXPECT_FALSE(matches(ip, "\"01.1.1.1\""));
  auto uuid = schema_grammar(R"({"type":"string","format":"uuid"})");
  EXPECT_TRUE(matches(uuid, "\"123e4567-e89b-12d3-a456-426614174000\""));
  EXPECT_FALSE(matches(uuid, "\"123e4567-e89b-12d3-a456-42661417400\""));
  auto email = schema_grammar(R"({"type":"string","format":"email"})");
  EXPECT_TRUE(matches(email, "\"ann.lee+x@mail.example.org\""));
  EXPECT_FALSE(matches(email, "\"ann@\""));
}

TEST(JsonSchema, PatternsMatchTheDecodedStringAsECMAScriptDoes) {
  struct Case {
    const char* pattern;
    std::vector<std::string> values;
  };
  const Case cases[] = {
      {"^[A-Z]{2}-\\d{3}$", {"AB-123", "AB-12", "ab-123", "AB-1234", "XY-000"}},
      {"ab", {"ab", "xxabyy", "a b", ""}},
      {"^a\"b\\\\c$", {"a\"b\\c", "a\"bc"}},
      {"^(cat|dog)s?$", {"cat", "dogs", "cats", "cow", "catss"}},
      {"^[^0-9\\s]+$", {"abc", "ab c", "a1", "é€"}},
      {"^\\w+@\\w+\\.(com|org)$", {"a@b.com", "a@b.net", "_@x.org"}},
      {"^.{2,4}$", {"ab", "abcd", "a", "abcde", "a\nb"}},
      {"^x*?y+$", {"y", "xxy", "x"}},
  };
  for (const Case& c : cases) {
    auto g = schema_grammar(Json{{"type", "string"}, {"pattern", c.pattern}}.dump());
    const std::regex re(c.pattern, std::regex::ECMAScript);
    for (const std::string& v : c.values) {
      EXPECT_EQ(matches(g, Json(v).dump()), std::regex_search(v, re)) << c.pattern << " on " << Json(v).dump();
    }
  }
}

TEST(JsonSchema, ArraysEnumsConstAnyOfRefsAndNullable) {
  auto g = schema_grammar(R"({"type":"array","items":{"enum":["a",1,null]},"minItems":1,"maxItems":3})");
  EXPECT_TRUE(matches(g, R"(["a"])"));
  EXPECT_TRUE(matches(g, R"(["a", 1, null])"));
  EXPECT_FALSE(matches(g, "[]"));
  EXPECT_FALSE(matches(g, R"(["a",1,null,"a"])"));
  EXPECT_FALSE(matches(g, R"(["b"])"));
  auto tuple = schema_grammar(R"({"prefixItems":[{"type":"string"},{"type":"integer"}],"items":false,"minItems":1})");
  EXPECT_TRUE(matches(tuple, R"(["x"])"));
  EXPECT_TRUE(matches(tuple, R"(["x",2])"));
  EXPECT_FALSE(matches(tuple, R"(["x",2,3])"));
  EXPECT_FALSE(matches(tuple, R"([2])"));
  auto tree = schema_grammar(R"({"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{
      "v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}}})");
  EXPECT_TRUE(matches(tree, R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4,"kids":[]}]}]})"));
  EXPECT_FALSE(matches(tree, R"({"v":1,"kids":[{"kids":[]}]})"));
  auto either = schema_grammar(R"({"anyOf":[{"type":"string","maxLength":2},{"type":"integer","minimum":0}],"nullable":true})");
  EXPECT_TRUE(matches(either, "\"ab\""));
  EXPECT_TRUE(matches(either, "12"));
  EXPECT_TRUE(matches(either, "null"));
  EXPECT_FALSE(matches(either, "\"abc\""));
  EXPECT_FALSE(matches(either, "-1"));
  auto types = schema_grammar(R"({"type":["string","null"],"minLength":1})");
  EXPECT_TRUE(matches(types, "null"));
  EXPECT_FALSE(matches(types, "\"\""));
  auto all = schema_grammar(R"({"allOf":[{"properties":{"a":{"type":"integer"}},"required":["a"]},
                                        {"$ref":"#/$defs/b"}],"$defs":{"b":{"properties":{"b":{"type":"boolean"}}}}})");
  EXPECT_TRUE(matches(all, R"({"a":1,"b":true})"));
  EXPECT_TRUE(matches(all, R"({"a":1})"));
  EXPECT_FALSE(matches(all, R"({"b":true})"));
  auto c = schema_grammar(R"({"const":{"k":["é",2]}})");
  EXPECT_TRUE(matches(c, R"({"k":["é",2]})"));
  auto lengths = schema_grammar(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_TRUE(matches(lengths, "\"\\n\\u00e9\""));
  EXPECT_TRUE(matches(lengths, "\"abc\""));
  EXPECT_FALSE(matches(lengths, "\"a\""));
  EXPECT_FALSE(matches(lengths, "\"abcd\""));
}

TEST(JsonSchema, AnyJsonObject) {
  auto g = Grammar::parse(json_object_gbnf());
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_TRUE(matches(*g, R"({"a":[1,{"b":null}],"c":"d","e":-1.5e3})"));
  EXPECT_TRUE(matches(*g, "{}"));
  EXPECT_FALSE(matches(*g, "[1]"));
  EXPECT_FALSE(matches(*g, R"({"a":01})"));
}

}  // namespace
}  // namespace owl::constrain
