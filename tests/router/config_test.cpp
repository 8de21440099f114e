// The router's YAML configuration: the documented example parses to what it says, and every
// mistake names the file, the line and the key.
#include "router/config.h"

#include <gtest/gtest.h>

#include <string>

namespace owl::router {
namespace {

const char* kExample = R"(models:
  - name: small
    path: models/stories260K.gguf
    private: true
  - name: big
    base_url: http://127.0.0.1:9001/v1/
    model: gpt-4o-mini
    api_key_env: BIG_API_KEY
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}
    timeout_s: 30
routes:
  - name: auto
    sensitive: local_only
    cascade:
      - model: small
        escalate_if: {mean_logprob_below: -1.2, json_invalid: true}
      - model: big
    fallback: [big]
local_cost: {per_core_hour: 0.05}
sensitive:
  detectors: [email, card]
  custom:
    - {name: project, words: [Bluebird, Kestrel]}
    - {name: ticket, regex: 'TCK-[0-9]{6}'}
)";

TEST(RouterConfig, TheExampleParsesToWhatItSays) {
  auto c = parse_router_config(kExample, "owl.yaml");
  ASSERT_TRUE(c.ok()) << c.message();
  ASSERT_EQ(c->models.size(), 2u);
  const ModelSpec& small = c->models[0];
  EXPECT_EQ(small.name, "small");
  EXPECT_TRUE(small.local());
  EXPECT_TRUE(small.is_private);
  EXPECT_EQ(small.line, 2);
  const ModelSpec& big = c->models[1];
  EXPECT_FALSE(big.local());
  EXPECT_FALSE(big.is_private);  // hosted models are not private unless they say so
  EXPECT_EQ(big.base_url, "http://127.0.0.1:9001/v1");  // the trailing slash dropped
  EXPECT_EQ(big.model, "gpt-4o-mini");
  EXPECT_EQ(big.api_key_env, "BIG_API_KEY");
  EXPECT_DOUBLE_EQ(big.price.input_per_mtok, 0.15);
  EXPECT_DOUBLE_EQ(big.price.output_per_mtok, 0.60);
  EXPECT_DOUBLE_EQ(big.timeout_s, 30);
  ASSERT_EQ(c->routes.size(), 1u);
  const RouteSpec& r = c->routes[0];
  EXPECT_EQ(r.name, "auto");
  EXPECT_EQ(r.sensitive, SensitivePolicy::kLocalOnly);
  ASSERT_EQ(r.cascade.size(), 2u);
  EXPECT_EQ(r.cascade[0].model, "small");
  EXPECT_DOUBLE_EQ(*r.cascade[0].escalate_if.mean_logprob_below, -1.2);
  EXPECT_TRUE(r.cascade[0].escalate_if.json_invalid);
  EXPECT_FALSE(r.cascade[0].escalate_if.min_logprob_below.has_value());
  EXPECT_EQ(r.fallback, std::vector<std::string>{"big"});
  EXPECT_DOUBLE_EQ(c->local_per_core_hour, 0.05);
  EXPECT_EQ(c->detectors, (std::vector<std::string>{"email", "card"}));
  ASSERT_EQ(c->custom_detectors.size(), 2u);
  EXPECT_EQ(c->custom_detectors[0].words, (std::vector<std::string>{"Bluebird", "Kestrel"}));
  EXPECT_EQ(c->custom_detectors[1].regex, "TCK-[0-9]{6}");
}

// Replaces the first occurrence of `from` in the example.
std::string edit(const std::string& from, const std::string& to) {
  std::string s = kExample;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

void expect_error(const std::string& yaml, const std::string& expected) {
  auto c = parse_router_config(yaml, "owl.yaml");
  ASSERT_FALSE(c.ok()) << "accepted: " << yaml;
  EXPECT_NE(c.message().find(expected), std::string::npos) << "message: " << c.message() << "\nexpected: " << expected;
}

TEST(RouterConfig, LoraTakesAPathOrAListOfPathsAndScales) {
  auto one = parse_router_config(edit("    private: true\n", "    private: true\n    lora: adapters/a.gguf\n"), "owl.yaml");
  ASSERT_TRUE(one.ok()) << one.message();
  ASSERT_EQ(one->models[0].lora.size(), 1u);
  EXPECT_EQ(one->models[0].lora[0].path, "adapters/a.gguf");
  EXPECT_DOUBLE_EQ(one->models[0].lora[0].scale, 1.0);
  EXPECT_EQ(one->models[0].lora[0].line, 5);
  auto many = parse_router_config(
      edit("    private: true\n", "    private: true\n    lora:\n      - a.gguf\n      - {path: b.gguf, scale: -0.5}\n"), "owl.yaml");
  ASSERT_TRUE(many.ok()) << many.message();
  ASSERT_EQ(many->models[0].lora.size(), 2u);
  EXPECT_EQ(many->models[0].lora[0].path, "a.gguf");
  EXPECT_EQ(many->models[0].lora[1].path, "b.gguf");
  EXPECT_DOUBLE_EQ(many->models[0].lora[1].scale, -0.5);
  EXPECT_EQ(many->models[0].lora[1].line, 7);
  EXPECT_TRUE(many->models[1].lora.empty());
}

TEST(RouterConfig, EveryMistakeNamesTheFileLineAndKey) {
  expect_error(edit("    private: true\n", "    privat: true\n"), "owl.yaml:4: models[0].privat: unknown key");
  expect_error(edit("    path: models/stories260K.gguf\n", ""), "owl.yaml:2: models[0]: model 'small' needs exactly one of path");
  expect_error(edit("    private: true\n", "    private: true\n    base_url: http://x\n"), "needs exactly one of path");
  expect_error(edit("    private: true\n", "    private: maybe\n"), "owl.yaml:4: models[0].private: expected true or false");
  expect_error(edit("http://127.0.0.1:9001/v1/", "127.0.0.1:9001"), "owl.yaml:6: models[1].base_url: '127.0.0.1:9001' is not an http:// or https:// URL");
  expect_error(edit("api_key_env: BIG_API_KEY", "api_key_env: sk-abc123"), "models[1].api_key_env: 'sk-abc123' is not an environment variable name");
  expect_error(edit("    timeout_s: 30\n", "    api_key: sk-123\n"), "owl.yaml:10: models[1].api_key: unknown key");
  expect_error(edit("    timeout_s: 30\n", "    timeout_s: 30\n    ca_file: /nonexistent/ca.pem\n"),
               "owl.yaml:11: models[1].ca_file: applies to https:// base URLs only");
  {
    std::string https = edit("http://127.0.0.1:9001/v1/", "https://127.0.0.1:9001/v1");
    https.replace(https.find("    timeout_s: 30\n"), std::string("    timeout_s: 30\n").size(), "    timeout_s: 30\n    ca_file: /nonexistent/ca.pem\n");
    expect_error(https, "owl.yaml:11: models[1].ca_file: /nonexistent/ca.pem: cannot be read");
  }
  expect_error(edit("input_per_mtok: 0.15", "input_per_mtok: -1"), "models[1].price.input_per_mtok: -1 out of range");
  expect_error(edit("input_per_mtok: 0.15", "input_per_mtok: cheap"), "models[1].price.input_per_mtok: 'cheap' is not a number");
  expect_error(edit("    private: true\n", "    private: true\n    timeout_s: 5\n"), "models[0].timeout_s: applies to hosted and node models only");
  expect_error(edit("    timeout_s: 30\n", "    timeout_s: 30\n    ctx: 512\n"), "models[1].ctx: applies to local models only");
  expect_error(edit("    timeout_s: 30\n", "    timeout_s: 30\n    lora: [a.gguf]\n"), "owl.yaml:11: models[1].lora: applies to local models only");
  expect_error(edit("    private: true\n", "    private: true\n    lora: {path: a.gguf}\n"), "owl.yaml:5: models[0].lora: expected an adapter's path or a list");
  expect_error(edit("    private: true\n", "    private: true\n    lora:\n      - a.gguf\n      - {path: b.gguf, scal: 2}\n"),
               "owl.yaml:7: models[0].lora[1].scal: unknown key");
  expect_error(edit("    private: true\n", "    private: true\n    lora: [{path: b.gguf, scale: 101}]\n"),
               "owl.yaml:5: models[0].lora[0].scale: 101 out of range -100..100");
  expect_error(edit("    private: true\n", "    private: true\n    lora: [{path: b.gguf, scale: big}]\n"),
               "models[0].lora[0].scale: 'big' is not a number");
  expect_error(edit("    private: true\n", "    private: true\n    lora: [{scale: 2}]\n"), "owl.yaml:5: models[0].lora[0].path: missing");
  expect_error(edit("    private: true\n", "    private: true\n    lora: ['']\n"), "models[0].lora[0]: empty path");
  expect_error(edit("    private: true\n", "    private: true\n    lora: [[a.gguf]]\n"), "models[0].lora[0]: expected an adapter's path or {path, scale}");
  expect_error(edit("  - name: big\n", "  - name: small\n"), "owl.yaml:5: models[1].name: model 'small' is defined twice");
  expect_error(edit("  - name: auto\n", "  - name: big\n"), "owl.yaml:12: routes[0].name: 'big' is already a model's name");
  expect_error(edit("sensitive: local_only", "sensitive: sometimes"), "owl.yaml:13: routes[0].sensitive: 'sometimes' is not one of: local_only, block, allow");
  expect_error(edit("      - model: big\n", "      - model: bigg\n"), "owl.yaml:17: routes[0].cascade[1].model: 'bigg' is not a model of this file (models: small, big)");
  expect_error(edit("fallback: [big]", "fallback: [huge]"), "routes[0].fallback[0]: 'huge' is not a model");
  expect_error(edit("      - model: big\n", "      - model: big\n        escalate_if: {empty: true}\n"), "routes[0].cascade[1].escalate_if: the last step has no step to escalate to");
  expect_error(edit("        escalate_if: {mean_logprob_below: -1.2, json_invalid: true}\n", ""), "routes[0].cascade[0]: step 'small' is not the last but has no escalate_if");
  expect_error(edit("mean_logprob_below: -1.2", "mean_logprob_under: -1.2"), "routes[0].cascade[0].escalate_if.mean_logprob_under: unknown key");
  expect_error(edit("mean_logprob_below: -1.2", "mean_logprob_below: 1.2"), "escalate_if.mean_logprob_below: 1.2 out of range -1000..0");
  expect_error(edit("    fallback: [big]\n", "    fallback: [big]\n    stream_escalation: true\n"), "routes[0].stream_escalation: true is not supported");
  expect_error(edit("    cascade:\n", "    cascade: []\n    x:\n"), "routes[0].x: unknown key");
  expect_error(edit("local_cost: {per_core_hour: 0.05}", "local_cost: {per_hour: 0.05}"), "owl.yaml:19: local_cost.per_hour: unknown key");
  expect_error(edit("    - {name: ticket, regex: 'TCK-[0-9]{6}'}\n", "    - {name: ticket}\n"), "sensitive.custom[1]: detector 'ticket' needs a regex or a list of words");
  expect_error(edit("models:", "modles:"), "owl.yaml:1: modles: unknown key (known here: models, routes, local_cost, sensitive, state)");
  expect_error("routes: []\n", "owl.yaml:1: models: expected a list of at least one model");
  expect_error("models: [\n", "owl.yaml:");  // YAML syntax, with its line
  expect_error("- a\n- b\n", "owl.yaml: expected a mapping with models: and routes:");
  expect_error("", "owl.yaml: expected a mapping");
}

TEST(RouterConfig, RulesComeBeforeTheCascade) {
  const std::string yaml = edit("    cascade:\n", R"(    rules:
      - if: {prompt_chars_above: 4000}
        model: big
      - if: {keywords: [contract, NDA], user: [alice, bob], header: {X-Tier: gold}, json: true}
        model: small
      - if: {regex: 'TCK-[0-9]+', prompt_chars_below: 100}
        model: big
    cascade:
)");
  auto c = parse_router_config(yaml, "owl.yaml");
  ASSERT_TRUE(c.ok()) << c.message();
  const auto& rules = c->routes[0].rules;
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].line, 15);
  EXPECT_EQ(*rules[0].prompt_chars_above, 4000);
  EXPECT_EQ(rules[0].model, "big");
  EXPECT_EQ(rules[1].keywords, (std::vector<std::string>{"contract", "NDA"}));
  EXPECT_EQ(rules[1].users, (std::vector<std::string>{"alice", "bob"}));
  ASSERT_EQ(rules[1].headers.size(), 1u);
  EXPECT_EQ(rules[1].headers[0], (std::pair<std::string, std::string>{"x-tier", "gold"}));  // names in lower case
  EXPECT_TRUE(*rules[1].json);
  EXPECT_EQ(rules[2].regex, "TCK-[0-9]+");
  EXPECT_EQ(*rules[2].prompt_chars_below, 100);
  const std::string one_rule = "    rules:\n      - if: {prompt_chars_above: 10}\n        model: big\n    cascade:\n";
  auto with = [&](const std::string& from, const std::string& to) {
    std::string y = edit("    cascade:\n", one_rule);
    y.replace(y.find(from), from.size(), to);
    return y;
  };
  expect_error(with("model: big\n    cascade", "model: huge\n    cascade"), "owl.yaml:16: routes[0].rules[0].model: 'huge' is not a model");
  expect_error(with("{prompt_chars_above: 10}", "{prompt_chars_over: 10}"), "owl.yaml:15: routes[0].rules[0].if.prompt_chars_over: unknown key");
  expect_error(with("{prompt_chars_above: 10}", "{}"), "routes[0].rules[0].if: a rule needs at least one condition");
  expect_error(with("        model: big\n", ""), "routes[0].rules[0].model: missing");
  expect_error(with("{prompt_chars_above: 10}", "{prompt_chars_above: -1}"), "rules[0].if.prompt_chars_above: -1 out of range");
  expect_error(with("{prompt_chars_above: 10}", "{header: [x]}"), "rules[0].if.header: expected a mapping of header names to values");
}

TEST(RouterConfig, ALocalModelIsPrivateUnlessItSaysNotAndAStepMayBeAName) {
  auto c = parse_router_config("models:\n  - {name: a, path: a.gguf}\n  - {name: b, path: b.gguf, private: false}\n"
                               "routes:\n  - {name: r, cascade: [a]}\n", "x.yaml");
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_TRUE(c->models[0].is_private);
  EXPECT_FALSE(c->models[1].is_private);
  EXPECT_EQ(c->routes[0].cascade[0].model, "a");
  EXPECT_EQ(c->routes[0].sensitive, SensitivePolicy::kLocalOnly);  // the default fails closed
  auto missing = load_router_config("/nonexistent/owl.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("/nonexistent/owl.yaml"), std::string::npos) << missing.message();
}

TEST(RouterConfig, NodesAreListedOrResolvedAndPrivate) {
  auto c = parse_router_config("models:\n  - {name: a, nodes: ['http://10.0.0.5:8080/', 'http://10.0.0.6:8080'], retries: 0}\n"
                               "  - {name: b, nodes_dns: 'http://owl-node:8080', timeout_s: 5}\n"
                               "routes:\n  - {name: r, cascade: [{model: a, escalate_if: {mean_logprob_below: -1}}, b]}\n", "g.yaml");
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->models[0].nodes, (std::vector<std::string>{"http://10.0.0.5:8080", "http://10.0.0.6:8080"}));
  EXPECT_EQ(c->models[0].retries, 0);
  EXPECT_TRUE(c->models[0].is_private);
  EXPECT_TRUE(c->models[0].served_by_nodes());
  EXPECT_FALSE(c->models[0].local());
  EXPECT_EQ(c->models[1].nodes_dns, "http://owl-node:8080");
  EXPECT_EQ(c->models[1].timeout_s, 5);
  auto error = [](const std::string& yaml) {
    auto r = parse_router_config(yaml, "g.yaml");
    return r.ok() ? std::string("parsed") : r.message();
  };
  EXPECT_NE(error("models:\n  - {name: a, nodes: []}\n").find("models[0].nodes: give a list of owl server URLs"), std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, nodes: ['10.0.0.5:8080']}\n").find("models[0].nodes[0]: '10.0.0.5:8080' is not an http"),
            std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, nodes: ['http://x:1', 'http://x:1/']}\n").find("models[0].nodes[1]: 'http://x:1' is listed twice"),
            std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, nodes: ['http://x:1'], nodes_dns: 'http://y:1'}\n").find("needs exactly one of"), std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, nodes_dns: 'https://y:1'}\n").find("is not an http:// URL"), std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, nodes: ['http://x:1'], ctx: 5}\n").find("models[0].ctx: applies to local models only"),
            std::string::npos);
}

TEST(RouterConfig, CanaryAndShadowAreRouteOptions) {
  const std::string models = "models:\n  - {name: a, path: a.gguf}\n  - {name: b, path: b.gguf}\n";
  auto c = parse_router_config(models + "routes:\n  - {name: r, cascade: [a], canary: {model: b, weight: 12.5}, shadow: b}\n", "c.yaml");
  ASSERT_TRUE(c.ok()) << c.message();
  ASSERT_TRUE(c->routes[0].canary.has_value());
  EXPECT_EQ(c->routes[0].canary->model, "b");
  EXPECT_EQ(c->routes[0].canary->weight, 12.5);
  EXPECT_EQ(c->routes[0].shadow, "b");
  auto error = [&](const std::string& route) {
    auto r = parse_router_config(models + "routes:\n  - {name: r, cascade: [a], " + route + "}\n", "c.yaml");
    return r.ok() ? std::string("parsed") : r.message();
  };
  EXPECT_NE(error("canary: {model: b, weight: 101}").find("routes[0].canary.weight"), std::string::npos);
  EXPECT_NE(error("canary: {model: z, weight: 5}").find("routes[0].canary.model: 'z' is not a model of this file"), std::string::npos);
  EXPECT_NE(error("canary: {model: b}").find("routes[0].canary.weight"), std::string::npos);
  EXPECT_NE(error("shadow: z").find("routes[0].shadow: 'z' is not a model of this file"), std::string::npos);
}

TEST(RouterConfig, StateAndRegistryModels) {
  auto c = parse_router_config("models:\n  - {name: a, registry: prod}\nstate: {auth: true, redis: 'redis://r:6379', public_metrics: true}\n",
                               "s.yaml");
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->models[0].registry, "prod");
  EXPECT_TRUE(c->models[0].local());
  EXPECT_TRUE(c->state.auth);
  EXPECT_EQ(c->state.redis, "redis://r:6379");
  EXPECT_TRUE(c->state.public_metrics);
  auto error = [](const std::string& yaml) {
    auto r = parse_router_config(yaml, "s.yaml");
    return r.ok() ? std::string("parsed") : r.message();
  };
  EXPECT_NE(error("models:\n  - {name: a, registry: prod, path: a.gguf}\n").find("needs exactly one of"), std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, registry: prod, lora: x.gguf}\n").find("models[0].lora: a registry version brings its own"),
            std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, path: a.gguf}\nstate: {file: x, redis: y}\n").find("state: give one of file and redis"),
            std::string::npos);
  EXPECT_NE(error("models:\n  - {name: a, path: a.gguf}\nstate: {auht: true}\n").find("state.auht: unknown key"), std::string::npos);
}

TEST(RouterConfig, SettingAThresholdChangesOnlyThatValue) {
  const std::string head = "# the router\nmodels:\n  - {name: s, path: s.gguf}  # small\n  - {name: b, path: b.gguf}\nroutes:\n"
                           "  - name: auto\n    cascade:\n      - model: s\n";
  const std::string tail = "      - b   # big\n";
  auto set = [&](const std::string& step, const std::string& key, double v) {
    return set_escalation_threshold(head + step + tail, "owl.yaml", "auto", 0, key, v);
  };
  // Replaced where it is written, flow or block, plain or quoted, comments kept.
  auto r = set("        escalate_if: {mean_logprob_below: -1.0, empty: true}\n", "mean_logprob_below", -0.71284);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(*r, head + "        escalate_if: {mean_logprob_below: -0.7128, empty: true}\n" + tail);
  r = set("        escalate_if:\n          min_logprob_below: \"-3\"   # was guessed\n", "min_logprob_below", -2.5);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(*r, head + "        escalate_if:\n          min_logprob_below: -2.5   # was guessed\n" + tail);
  // Added to the step's escalate_if.
  r = set("        escalate_if: {empty: true}\n", "mean_logprob_below", -1.25);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(*r, head + "        escalate_if: {mean_logprob_below: -1.25, empty: true}\n" + tail);
  r = set("        escalate_if:\n          json_invalid: true\n", "mean_logprob_below", -0.5);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(*r, head + "        escalate_if:\n          mean_logprob_below: -0.5\n          json_invalid: true\n" + tail);
  // Mistakes.
  const std::string ok = head + "        escalate_if: {empty: true}\n" + tail;
  auto no_route = set_escalation_threshold(ok, "owl.yaml", "other", 0, "mean_logprob_below", -1);
  ASSERT_FALSE(no_route);
  EXPECT_NE(no_route.message().find("no route named 'other'"), std::string::npos) << no_route.message();
  auto last = set_escalation_threshold(ok, "owl.yaml", "auto", 1, "mean_logprob_below", -1);
  ASSERT_FALSE(last);
  EXPECT_NE(last.message().find("the last never escalates"), std::string::npos) << last.message();
  auto out_of_range = set_escalation_threshold(ok, "owl.yaml", "auto", 0, "mean_logprob_below", 0.5);
  ASSERT_FALSE(out_of_range);
  EXPECT_NE(out_of_range.message().find("would no longer parse"), std::string::npos) << out_of_range.message();
}

}  // namespace
}  // namespace owl::router
