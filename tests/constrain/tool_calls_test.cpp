#include "constrain/tool_calls.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "constrain/matcher.h"

namespace owl::constrain {
namespace {

using Json = nlohmann::ordered_json;

std::string shared_template(const std::string& name) {
  std::ifstream in(std::string(OWL_SHARED_DIR) + "/templates/" + name + ".jinja");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return ss.str();
}

const Json kTools = Json::parse(R"([
  {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
    "properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},"required":["city"]}}},
  {"type":"function","function":{"name":"add","parameters":{"type":"object",
    "properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}}}])");

TEST(ToolCalls, TheSyntaxComesFromTheTemplate) {
  EXPECT_EQ(*tool_syntax(shared_template("Qwen-Qwen2.5-7B-Instruct")), ToolSyntax::kHermes);
  EXPECT_EQ(*tool_syntax(shared_template("Qwen-Qwen3-0.6B")), ToolSyntax::kHermes);
  EXPECT_EQ(*tool_syntax(shared_template("meta-llama-Llama-3.1-8B-Instruct")), ToolSyntax::kLlama3);
  EXPECT_EQ(*tool_syntax(shared_template("meta-llama-Llama-3.2-3B-Instruct")), ToolSyntax::kLlama3);
  EXPECT_EQ(*tool_syntax(shared_template("mistralai-Mistral-Nemo-Instruct-2407")), ToolSyntax::kMistral);
  EXPECT_EQ(*tool_syntax(""), ToolSyntax::kHermes);  // chatml, or no template: owl's default
  EXPECT_FALSE(tool_syntax(shared_template("Mistral-Small-3.2-24B-Instruct-2506")).ok());
  EXPECT_FALSE(tool_syntax(shared_template("ibm-granite-granite-3.3-2B-Instruct")).ok());
}

TEST(ToolCalls, HermesCallsAndTheTextAroundThem) {
  const ParsedOutput p = parse_tool_calls(ToolSyntax::kHermes,
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>", kTools);
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(Json::parse(p.calls[0].arguments), Json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(p.calls[1].arguments, R"({"a":1,"b":2})");
  EXPECT_EQ(p.content, "Let me check.");
  // Not calls: unknown functions, broken JSON, plain text.
  EXPECT_TRUE(parse_tool_calls(ToolSyntax::kHermes, "<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>", kTools).calls.empty());
  EXPECT_TRUE(parse_tool_calls(ToolSyntax::kHermes, "<tool_call>{\"name\": \"add\", </tool_call>", kTools).calls.empty());
  EXPECT_EQ(parse_tool_calls(ToolSyntax::kHermes, " Hello there ", kTools).content, "Hello there");
}

TEST(ToolCalls, Llama3AndMistralCalls) {
  ParsedOutput p = parse_tool_calls(ToolSyntax::kLlama3, "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}", kTools);
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, R"({"a":1,"b":2})");
  p = parse_tool_calls(ToolSyntax::kLlama3, "{\"name\": \"add\", \"parameters\": \"{\\\"a\\\": 3, \\\"b\\\": 4}\"}", kTools);
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, R"({"a":3,"b":4})");
  EXPECT_EQ(parse_tool_calls(ToolSyntax::kLlama3, "The answer is 4.", kTools).content, "The answer is 4.");
  p = parse_tool_calls(ToolSyntax::kMistral, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, "
                                             "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]", kTools);
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[1].name, "get_weather");
  EXPECT_TRUE(parse_tool_calls(ToolSyntax::kMistral, "[1, 2]", kTools).calls.empty());
}

bool matches(const std::string& gbnf, std::string_view text) {
  auto g = Grammar::parse(gbnf);
  EXPECT_TRUE(g.ok()) << g.message();
  Matcher m(*g);
  return m.feed(text) && m.accepted();
}

TEST(ToolCalls, ForcedCallsFollowTheSyntaxAndTheParameters) {
  auto any = forced_call(ToolSyntax::kHermes, kTools, "", false);
  ASSERT_TRUE(any.ok()) << any.message();
  EXPECT_EQ(any->prefix, "<tool_call>\n");
  EXPECT_TRUE(matches(any->gbnf, "{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": -2}}\n</tool_call>"));
  EXPECT_TRUE(matches(any->gbnf, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"c\"}}\n</tool_call>"));
  EXPECT_FALSE(matches(any->gbnf, "{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>"));
  EXPECT_FALSE(matches(any->gbnf, "{\"name\": \"rm\", \"arguments\": {}}\n</tool_call>"));
  const std::string two = "{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>\n<tool_call>\n"
                          "{\"name\": \"add\", \"arguments\": {\"a\": 3, \"b\": 4}}\n</tool_call>";
  EXPECT_FALSE(matches(any->gbnf, two));
  EXPECT_TRUE(matches(forced_call(ToolSyntax::kHermes, kTools, "", true)->gbnf, two));
  auto named = forced_call(ToolSyntax::kLlama3, kTools, "get_weather", false);
  ASSERT_TRUE(named.ok());
  EXPECT_TRUE(matches(named->gbnf, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}"));
  EXPECT_FALSE(matches(named->gbnf, "{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}"));
  auto mistral = forced_call(ToolSyntax::kMistral, kTools, "add", true);
  ASSERT_TRUE(mistral.ok());
  EXPECT_EQ(mistral->prefix, "[TOOL_CALLS]");
  EXPECT_TRUE(matches(mistral->gbnf, "[{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, {\"name\": \"add\", \"arguments\": {\"a\": 0, \"b\": 0}}]"));
  EXPECT_FALSE(forced_call(ToolSyntax::kHermes, kTools, "missing", false).ok());
  // What a forced call generates parses back into the call.
  const ParsedOutput p = parse_tool_calls(ToolSyntax::kMistral, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}]", kTools);
  ASSERT_EQ(p.calls.size(), 1u);
}

}  // namespace
}  // namespace owl::constrain
