// Unit tests of the template interpreter: jinja2 snippets with outputs recorded from jinja2
// itself (jinja_snippets.json, made by gen_jinja_snippets.py), error positions, limits against
// hostile templates, owl's own semantics (list.append), and the chat API.
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "template/chat.h"
#include "template/template.h"

namespace owl::tmpl {
namespace {

using json = nlohmann::ordered_json;

std::tm fixture_time() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_hour = 12;
  tm.tm_wday = 4;
  tm.tm_yday = 14;
  return tm;
}

Result<std::string> render(std::string_view source, const json& context = json::object(), RenderOptions options = {}) {
  auto t = Template::parse(source);
  if (!t) return t.error();
  if (!options.clock) options.clock = fixture_time;
  return t->render(context, options);
}

std::string ok(std::string_view source, const json& context = json::object()) {
  auto out = render(source, context);
  EXPECT_TRUE(out.ok()) << source << ": " << out.message();
  return out.ok() ? *out : std::string();
}

std::string error_of(std::string_view source, const json& context = json::object(), RenderOptions options = {}) {
  auto out = render(source, context, options);
  EXPECT_FALSE(out.ok()) << source << " rendered " << (out.ok() ? *out : "");
  return out.ok() ? std::string() : out.message();
}

TEST(JinjaSnippets, MatchJinja2) {
  std::ifstream in(std::string(OWL_SOURCE_DIR) + "/tests/template/jinja_snippets.json");
  ASSERT_TRUE(in) << "jinja_snippets.json missing";
  std::stringstream ss;
  ss << in.rdbuf();
  json cases = json::parse(ss.str());
  ASSERT_GE(cases.size(), 90u);
  for (const auto& c : cases) {
    std::string source = c["template"].get<std::string>();
    auto out = render(source, c["context"]);
    if (c.contains("error")) {
      EXPECT_FALSE(out.ok()) << source << "\n  jinja2: " << c["error"].get<std::string>() << "\n  owl rendered: "
                             << (out.ok() ? *out : "");
    } else {
      ASSERT_TRUE(out.ok()) << source << ": " << out.message();
      EXPECT_EQ(*out, c["expected"].get<std::string>()) << source;
    }
  }
}

TEST(Whitespace, TrimAndLstripBlocks) {
  EXPECT_EQ(ok("  {% if true %}\n  x\n  {% endif %}\n"), "  x\n");
  EXPECT_EQ(ok("a\n  {{ 1 }}\n"), "a\n  1");  // lstrip never applies to {{ }}; trailing \n dropped
  EXPECT_EQ(ok("a  {%- if true %}b{% endif %}"), "ab");
  EXPECT_EQ(ok("{% if true -%}  \n  b{% endif %}"), "b");
  EXPECT_EQ(ok("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(ok("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(ok("{{ 'a' -}}  \n  b"), "ab");
  EXPECT_EQ(ok("{# c #}\nx"), "x");
  EXPECT_EQ(ok("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
  EXPECT_EQ(ok("a\r\nb"), "a\nb");
}

TEST(Values, PythonPrinting) {
  EXPECT_EQ(ok("{{ 1.0 }} {{ 0.5 }} {{ 1e100 }} {{ 2 ** 62 }} {{ none }} {{ true }}"),
            "1.0 0.5 1e+100 4611686018427387904 None True");
  EXPECT_EQ(ok("{{ ['a', \"it's\", 1.5, none, {'k': false}] }}"), "['a', \"it's\", 1.5, None, {'k': False}]");
  EXPECT_EQ(ok("{{ x }}"), "");
}

TEST(Values, ToJsonKeepsOrderAndUnicode) {
  json ctx = {{"d", {{"z", 1}, {"a", "é🦙"}, {"n", nullptr}, {"f", 2.5}, {"l", {1, true}}}}};
  EXPECT_EQ(ok("{{ d | tojson }}", ctx), R"({"z": 1, "a": "é🦙", "n": null, "f": 2.5, "l": [1, true]})");
  EXPECT_EQ(ok("{{ d.l | tojson(indent=2) }}", ctx), "[\n  1,\n  true\n]");
  EXPECT_EQ(ok("{{ 'é' | tojson(ensure_ascii=true) }}"), "\"\\u00e9\"");
}

TEST(Errors, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("line one\n{% if %}"), "template:2:7: Expected an expression, got 'end of statement block'");
  EXPECT_EQ(error_of("{{ 1 + }}"), "template:1:8: unexpected 'end of print statement'");
  EXPECT_EQ(error_of("ab\n\n  {% frobnicate %}"), "template:3:6: Encountered unknown tag 'frobnicate'.");
  EXPECT_NE(error_of("{% if true %}").find("template:1:"), std::string::npos);
  EXPECT_EQ(error_of("x\n{{ 'abc }}"), "template:2:4: unexpected char '''");
  EXPECT_EQ(error_of("{{ (1, 2] }}"), "template:1:9: unexpected ']', expected ')'");
  EXPECT_EQ(error_of("{% break %}"), "template:1:4: 'break' outside of a loop");
}

TEST(Errors, RuntimeErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("a\n  {{ 1 + 'a' }}"), "template:2:8: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{{ x.y }}"), "template:1:4: 'x' is undefined");
  EXPECT_EQ(error_of("\n\n{{ [1] | nosuch }}"), "template:3:10: No filter named 'nosuch'.");
  EXPECT_EQ(error_of("{{ 1 is nosuch }}"), "template:1:6: No test named 'nosuch'.");
  EXPECT_EQ(error_of("{% for x in none %}{% endfor %}"), "template:1:4: 'NoneType' object is not iterable");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "template:1:6: integer division or modulo by zero");
  EXPECT_EQ(error_of("{{ 'a' < 1 }}"), "template:1:4: '<' not supported between instances of 'str' and 'int'");
  EXPECT_EQ(error_of("{% set x = 1 %}{% set x.y = 2 %}"),
            "template:1:19: Cannot assign attribute on non-namespace object");
  EXPECT_EQ(error_of("{{ x | tojson }}"), "template:1:8: Object of type Undefined is not JSON serializable");
}

TEST(Errors, RaiseExceptionGivesTheTemplatesMessage) {
  EXPECT_EQ(error_of("{% if true %}{{ raise_exception('Roles must alternate') }}{% endif %}"), "Roles must alternate");
}

TEST(Limits, HostileTemplatesFailCleanly) {
  RenderOptions small;
  small.limits.max_steps = 100'000;
  EXPECT_NE(error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", json::object(), small)
                .find("work limit"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .find("exceeds the limit"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nested deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000000 }}").find("too large"), std::string::npos);
  EXPECT_FALSE(render("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").ok());
  EXPECT_FALSE(render("{{ " + std::string(100000, '[')).ok());
  EXPECT_FALSE(render("{{ " + std::string(5000, '-') + "1 }}").ok());
  EXPECT_FALSE(render("{{ x" + std::string(20000, '|') + " }}").ok());
  std::string deep_ifs;
  for (int i = 0; i < 1000; ++i) deep_ifs += "{% if true %}";
  EXPECT_FALSE(render(deep_ifs).ok());
  EXPECT_FALSE(render("{{ range(10 ** 12) | length }}").ok());
  // A reference cycle (list containing itself) is released at the end of the render.
  EXPECT_EQ(ok("{% set l = [] %}{% set _ = l.append(l) %}{{ l | length }}"), "1");
}

TEST(Semantics, MutatingMethodsWork) {
  // Hugging Face's sandbox raises SecurityError here; owl mutates, as llama.cpp's engine does.
  EXPECT_EQ(ok("{% set l = [1] %}{% set _ = l.append(2) %}{{ l }}{{ l.pop(0) }}{{ l }}"), "[1, 2]1[2]");
  EXPECT_EQ(ok("{% set d = {} %}{% set _ = d.update({'a': 1}) %}{{ d }}"), "{'a': 1}");
}

TEST(Semantics, ScopesFollowJinja) {
  EXPECT_EQ(ok("{% set x = 1 %}{% for i in [1, 2] %}{% set x = 5 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(ok("{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");
  EXPECT_EQ(ok("{% set y = 3 %}{% macro m() %}{{ y }}{% endmacro %}{% set y = 4 %}{{ m() }}"), "4");
}

TEST(Chat, RendersWithHuggingFaceVariables) {
  json messages = json::array({{{"role", "user"}, {"content", "Hi"}}});
  ChatOptions options;
  options.add_generation_prompt = true;
  auto out = render_chat(*builtin_format("chatml"), messages, options);
  ASSERT_TRUE(out.ok()) << out.message();
  EXPECT_EQ(*out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto tools = render_chat("{{ tools is none }}{{ documents is none }}{{ extra }}", messages,
                           ChatOptions{.extra_context = {{"extra", 7}}});
  ASSERT_TRUE(tools.ok()) << tools.message();
  EXPECT_EQ(*tools, "TrueTrue7");
  EXPECT_FALSE(render_chat("x", json::object()).ok());
}

TEST(Chat, BuiltinFormats) {
  json messages = json::array({{{"role", "system"}, {"content", "Be brief."}},
                               {{"role", "user"}, {"content", "Hi"}},
                               {{"role", "assistant"}, {"content", "Hello"}},
                               {{"role", "user"}, {"content", "Bye"}}});
  ChatOptions options{.add_generation_prompt = true, .bos_token = "<s>", .eos_token = "</s>"};
  EXPECT_EQ(*render_chat(*builtin_format("llama2"), messages, options),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(*render_chat(*builtin_format("llama3"), messages, options),
            "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
            "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(*render_chat(*builtin_format("phi3"), messages, options),
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n<|user|>\nBye<|end|>\n"
            "<|assistant|>\n");
  json no_system(messages.begin() + 1, messages.end());
  EXPECT_EQ(*render_chat(*builtin_format("mistral"), no_system, options), "<s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]");
  EXPECT_EQ(*render_chat(*builtin_format("gemma"), no_system, options),
            "<s><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>user\nBye"
            "<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render_chat(*builtin_format("gemma"), messages, options).message(), "System role not supported");
  EXPECT_EQ(builtin_format("nope"), nullptr);
  EXPECT_EQ(builtin_format_names().size(), 6u);
}

TEST(Chat, FoldedSystemMessageRendersWithTemplatesThatRejectIt) {
  const json messages = json::parse(R"([{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hi"},
                                        {"role": "assistant", "content": "Hello"},
                                        {"role": "user", "content": "Bye"}])");
  for (const char* format : {"gemma", "mistral"}) {
    ASSERT_FALSE(render_chat(*builtin_format(format), messages, {}).ok()) << format;
    auto folded = render_chat(*builtin_format(format), fold_system_message(messages), {});
    ASSERT_TRUE(folded.ok()) << format << ": " << folded.message();
    EXPECT_NE(folded->find("Be brief.\n\nHi"), std::string::npos) << *folded;
    EXPECT_EQ(folded->find("Be brief.\n\nBye"), std::string::npos) << *folded;
  }
  EXPECT_EQ(fold_system_message(json::array({messages[1]})), json::array({messages[1]}));
}

}  // namespace
}  // namespace owl::tmpl
