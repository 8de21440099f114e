#include "router/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "core/files.h"
#include "core/yaml.h"
#include "router/request.h"

namespace owl::router {
namespace {

using core::At;
using core::get_bool;
using core::get_int;
using core::get_number;
using core::get_string;
using core::get_strings;
using core::int_in;
using core::number_in;
using core::only_keys;
using core::read_optional;


bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '/')) return false;
  }
  return true;
}

bool valid_env_name(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

// `lora:` a path, or a list of paths and {path, scale}.
core::Status parse_lora(const At& at, ModelSpec& m) {
  if (!at.present()) return {};
  if (at.node.IsScalar()) {
    auto path = get_string(at);
    if (!path) return path.error();
    if (path->empty()) return at.error("empty path");
    m.lora.push_back({.path = *path, .line = at.line()});
    return {};
  }
  if (!at.node.IsSequence()) return at.error("expected an adapter's path or a list of paths and {{path, scale}}");
  for (size_t i = 0; i < at.node.size(); ++i) {
    const At item = at.item(i);
    LoraSpec spec{.line = item.line()};
    if (item.node.IsScalar()) {
      auto path = get_string(item);
      if (!path) return path.error();
      spec.path = *path;
    } else if (item.node.IsMap()) {
      OWL_TRY(only_keys(item, {"path", "scale"}));
      auto path = get_string(item.child("path"));
      if (!path) return path.error();
      spec.path = *path;
      OWL_TRY(read_optional(item, "scale", number_in(-kMaxAdapterScale, kMaxAdapterScale), spec.scale));
    } else {
      return item.error("expected an adapter's path or {{path, scale}}");
    }
    if (spec.path.empty()) return item.error("empty path");
    m.lora.push_back(std::move(spec));
  }
  return {};
}

core::Status parse_local(const At& at, ModelSpec& m) {
  if (const At alias = at.child("registry"); alias.present()) {
    auto name = get_string(alias);
    if (!name) return name.error();
    if (!valid_name(*name)) return alias.error("'{}' is not an alias (prod, canary, ...)", *name);
    if (at.child("lora").present()) return at.child("lora").error("a registry version brings its own adapters (owl models add --lora)");
    m.registry = *name;
  } else {
    auto path = get_string(at.child("path"));
    if (!path) return path.error();
    if (path->empty()) return at.child("path").error("empty path");
    m.path = *path;
  }
  OWL_TRY(parse_lora(at.child("lora"), m));
  OWL_TRY(read_optional(at, "parallel", int_in(1, 256), m.parallel));
  OWL_TRY(read_optional(at, "ctx", int_in(1, 1 << 20), m.ctx));
  return {};
}

// `nodes`: the base URLs of owl servers (http://host:port), each serving the model under its name
// (or `model`); or `nodes_dns`: one URL whose host name resolves to every node's address.
core::Status parse_nodes(const At& at, ModelSpec& m) {
  if (const At dns = at.child("nodes_dns"); dns.present()) {
    auto url = get_string(dns);
    if (!url) return url.error();
    if (!url->starts_with("http://")) return dns.error("'{}' is not an http:// URL (http://SERVICE:PORT)", *url);
    while (url->ends_with('/')) url->pop_back();
    m.nodes_dns = *url;
    return parse_upstream_options(at, m, *url);
  }
  const At list = at.child("nodes");
  if (!list.node.IsSequence() || list.node.size() == 0) return list.error("give a list of owl server URLs (http://host:port)");
  for (size_t i = 0; i < list.node.size(); ++i) {
    auto url = get_string(list.item(i));
    if (!url) return url.error();
    if (!url->starts_with("http://") && !url->starts_with("https://")) return list.item(i).error("'{}' is not an http:// or https:// URL", *url);
    while (url->ends_with('/')) url->pop_back();
    if (std::find(m.nodes.begin(), m.nodes.end(), *url) != m.nodes.end()) return list.item(i).error("'{}' is listed twice", *url);
    m.nodes.push_back(*url);
  }
  return parse_upstream_options(at, m, m.nodes[0]);
}

core::Result<ModelSpec> parse_model(const At& at) {
  if (auto s = only_keys(at, {"name", "path", "registry", "lora", "parallel", "ctx", "private", "base_url", "nodes", "nodes_dns", "model", "api_key_env",
                              "price", "timeout_s", "retries", "ca_file"});
      !s) {
    return s.error();
  }
  ModelSpec m;
  m.line = at.node.Mark().line + 1;
  auto name = get_string(at.child("name"));
  if (!name) return name.error();
  if (!valid_name(*name)) return at.child("name").error("'{}' is not a model name (letters, digits, - _ . : @ /)", *name);
  m.name = *name;
  const bool local = at.child("path").present() || at.child("registry").present(), hosted = at.child("base_url").present(),
             nodes = at.child("nodes").present() || at.child("nodes_dns").present();
  int kinds = 0;
  for (const char* key : {"path", "registry", "base_url", "nodes", "nodes_dns"}) kinds += at.child(key).present();
  if (kinds != 1) {
    return at.error("model '{}' needs exactly one of path (a local GGUF file), registry (an alias of owl models), base_url (a hosted "
                    "API), nodes (owl servers) or nodes_dns (a name that resolves to owl servers)", m.name);
  }
  static const std::vector<std::string_view> kHostedOnly = {"model", "api_key_env", "price", "timeout_s", "retries", "ca_file"};
  static const std::vector<std::string_view> kLocalOnly = {"lora", "parallel", "ctx"};
  for (std::string_view key : local ? kHostedOnly : kLocalOnly) {
    if (at.child(key).present()) {
      return at.child(key).error("applies to {} models only; '{}' is {}", local ? "hosted and node" : "local", m.name,
                                 local ? "local (path)" : hosted ? "hosted (base_url)" : "served by nodes");
    }
  }
  if (auto s = local ? parse_local(at, m) : hosted ? parse_hosted(at, m) : parse_nodes(at, m); !s) return s.error();
  m.is_private = local || nodes;  // nodes are owl servers of the same operator
  OWL_TRY(read_optional(at, "private", get_bool, m.is_private));
  return m;
}

core::Result<Escalation> parse_escalation(const At& at) {
  if (auto s = only_keys(at, {"mean_logprob_below", "min_logprob_below", "entropy_above", "json_invalid", "schema_invalid", "empty"}); !s) {
    return s.error();
  }
  Escalation e;
  OWL_TRY(read_optional(at, "mean_logprob_below", number_in(-1000, 0), e.mean_logprob_below));
  OWL_TRY(read_optional(at, "min_logprob_below", number_in(-1000, 0), e.min_logprob_below));
  OWL_TRY(read_optional(at, "entropy_above", number_in(0, 100), e.entropy_above));
  OWL_TRY(read_optional(at, "json_invalid", get_bool, e.json_invalid));
  OWL_TRY(read_optional(at, "schema_invalid", get_bool, e.schema_invalid));
  OWL_TRY(read_optional(at, "empty", get_bool, e.empty));
  return e;
}

core::Status check_model_ref(const At& at, const std::string& name, const RouterConfig& config) {
  if (config.find_model(name) != nullptr) return {};
  std::vector<std::string> names;
  for (const ModelSpec& m : config.models) names.push_back(m.name);
  return at.error("'{}' is not a model of this file (models: {})", name, fmt::join(names, ", "));
}

core::Result<RuleSpec> parse_rule(const At& at, const RouterConfig& config) {
  OWL_TRY(only_keys(at, {"if", "model"}));
  RuleSpec r;
  r.line = at.node.Mark().line + 1;
  const At when = at.child("if");
  OWL_TRY(only_keys(when, {"prompt_chars_above", "prompt_chars_below", "regex", "keywords", "user", "header", "json"}));
  if (when.node.size() == 0) return when.error("a rule needs at least one condition");
  OWL_TRY(read_optional(when, "prompt_chars_above", int_in(0, int64_t{1} << 40), r.prompt_chars_above));
  OWL_TRY(read_optional(when, "prompt_chars_below", int_in(1, int64_t{1} << 40), r.prompt_chars_below));
  OWL_TRY(read_optional(when, "regex", get_string, r.regex));
  OWL_TRY(read_optional(when, "keywords", get_strings, r.keywords));
  OWL_TRY(read_optional(when, "user", get_strings, r.users));
  OWL_TRY(read_optional(when, "json", get_bool, r.json));
  if (const At header = when.child("header"); header.present()) {
    if (!header.node.IsMap()) return header.error("expected a mapping of header names to values");
    for (const auto& kv : header.node) {
      std::string name = kv.first.as<std::string>();
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      auto value = get_string(header.child(kv.first.as<std::string>()));
      if (!value) return value.error();
      r.headers.emplace_back(std::move(name), std::move(*value));
    }
  }
  auto model = get_string(at.child("model"));
  if (!model) return model.error();
  OWL_TRY(check_model_ref(at.child("model"), *model, config));
  r.model = *model;
  return r;
}

core::Result<RouteSpec> parse_route(const At& at, const RouterConfig& config) {
  if (auto s = only_keys(at, {"name", "sensitive", "rules", "cascade", "fallback", "stream_escalation", "canary", "shadow"}); !s) {
    return s.error();
  }
  RouteSpec r;
  r.line = at.node.Mark().line + 1;
  auto name = get_string(at.child("name"));
  if (!name) return name.error();
  if (!valid_name(*name)) return at.child("name").error("'{}' is not a route name (letters, digits, - _ . : @ /)", *name);
  if (config.find_model(*name) != nullptr) return at.child("name").error("'{}' is already a model's name", *name);
  r.name = *name;
  if (at.child("sensitive").present()) {
    auto v = get_string(at.child("sensitive"));
    if (!v) return v.error();
    if (*v == "local_only") r.sensitive = SensitivePolicy::kLocalOnly;
    else if (*v == "block") r.sensitive = SensitivePolicy::kBlock;
    else if (*v == "allow") r.sensitive = SensitivePolicy::kAllow;
    else return at.child("sensitive").error("'{}' is not one of: local_only, block, allow", *v);
  }
  if (const At rules = at.child("rules"); rules.present()) {
    if (!rules.node.IsSequence()) return rules.error("expected a list of rules ({{if: {{...}}, model: NAME}})");
    for (size_t i = 0; i < rules.node.size(); ++i) {
      auto rule = parse_rule(rules.item(i), config);
      if (!rule) return rule.error();
      r.rules.push_back(std::move(*rule));
    }
  }
  const At cascade = at.child("cascade");
  if (!cascade.present() || !cascade.node.IsSequence() || cascade.node.size() == 0) return cascade.error("expected a list of at least one step ({{model: NAME}})");
  for (size_t i = 0; i < cascade.node.size(); ++i) {
    const At step = cascade.item(i);
    CascadeStep s;
    if (step.node.IsScalar()) {
      s.model = step.node.as<std::string>();
    } else {
      if (auto ok = only_keys(step, {"model", "escalate_if"}); !ok) return ok.error();
      auto m = get_string(step.child("model"));
      if (!m) return m.error();
      s.model = *m;
      if (step.child("escalate_if").present()) {
        auto e = parse_escalation(step.child("escalate_if"));
        if (!e) return e.error();
        s.escalate_if = *e;
      }
    }
    if (auto ok = check_model_ref(step.node.IsScalar() ? step : step.child("model"), s.model, config); !ok) return ok.error();
    if (i + 1 == cascade.node.size() && s.escalate_if.any()) {
      return step.child("escalate_if").error("the last step has no step to escalate to");
    }
    if (i + 1 < cascade.node.size() && !s.escalate_if.any()) {
      return step.error("step '{}' is not the last but has no escalate_if: the steps after it would never be asked", s.model);
    }
    r.cascade.push_back(std::move(s));
  }
  OWL_TRY(read_optional(at, "fallback", get_strings, r.fallback));
  for (size_t i = 0; i < r.fallback.size(); ++i) OWL_TRY(check_model_ref(at.child("fallback").item(i), r.fallback[i], config));
  if (const At canary = at.child("canary"); canary.present()) {
    if (auto ok = only_keys(canary, {"model", "weight"}); !ok) return ok.error();
    auto m = get_string(canary.child("model"));
    if (!m) return m.error();
    OWL_TRY(check_model_ref(canary.child("model"), *m, config));
    auto w = get_number(canary.child("weight"), 0, 100);
    if (!w) return w.error();
    r.canary = CanarySpec{.model = *m, .weight = *w};
  }
  if (const At shadow = at.child("shadow"); shadow.present()) {
    auto m = get_string(shadow);
    if (!m) return m.error();
    OWL_TRY(check_model_ref(shadow, *m, config));
    r.shadow = *m;
  }
  if (at.child("stream_escalation").present()) {
    auto v = get_bool(at.child("stream_escalation"));
    if (!v) return v.error();
    if (*v) return at.child("stream_escalation").error("true is not supported: a streamed answer cannot be taken back, so a cascade holds it until its confidence is known (false)");
  }
  return r;
}

core::Status parse_sensitive(const At& at, RouterConfig& config) {
  if (auto s = only_keys(at, {"detectors", "custom"}); !s) return s;
  OWL_TRY(read_optional(at, "detectors", get_strings, config.detectors));
  if (const At custom = at.child("custom"); custom.present()) {
    if (!custom.node.IsSequence()) return custom.error("expected a list of {{name, regex}} or {{name, words}}");
    for (size_t i = 0; i < custom.node.size(); ++i) {
      const At d = custom.item(i);
      if (auto s = only_keys(d, {"name", "regex", "words"}); !s) return s;
      CustomDetectorSpec spec;
      auto name = get_string(d.child("name"));
      if (!name) return name.error();
      spec.name = *name;
      OWL_TRY(read_optional(d, "regex", get_string, spec.regex));
      OWL_TRY(read_optional(d, "words", get_strings, spec.words));
      if (spec.regex.empty() && spec.words.empty()) return d.error("detector '{}' needs a regex or a list of words", spec.name);
      config.custom_detectors.push_back(std::move(spec));
    }
  }
  return {};
}

core::Status parse_root(const At& root, RouterConfig& config) {
  if (auto s = only_keys(root, {"models", "routes", "local_cost", "sensitive", "state"}); !s) return s;
  const At models = root.child("models");
  if (!models.present() || !models.node.IsSequence() || models.node.size() == 0) return models.error("expected a list of at least one model");
  std::set<std::string> names;
  for (size_t i = 0; i < models.node.size(); ++i) {
    auto m = parse_model(models.item(i));
    if (!m) return m.error();
    if (!names.insert(m->name).second) return models.item(i).child("name").error("model '{}' is defined twice", m->name);
    config.models.push_back(std::move(*m));
  }
  if (const At routes = root.child("routes"); routes.present()) {
    if (!routes.node.IsSequence()) return routes.error("expected a list of routes");
    for (size_t i = 0; i < routes.node.size(); ++i) {
      auto r = parse_route(routes.item(i), config);
      if (!r) return r.error();
      if (!names.insert(r->name).second) return routes.item(i).child("name").error("route '{}' is defined twice", r->name);
      config.routes.push_back(std::move(*r));
    }
  }
  if (const At cost = root.child("local_cost"); cost.present()) {
    if (auto s = only_keys(cost, {"per_core_hour"}); !s) return s;
    auto v = get_number(cost.child("per_core_hour"), 0, 1e4);
    if (!v) return v.error();
    config.local_per_core_hour = *v;
  }
  if (const At sensitive = root.child("sensitive"); sensitive.present()) {
    if (auto s = parse_sensitive(sensitive, config); !s) return s;
  }
  if (const At state = root.child("state"); state.present()) {
    if (auto s = only_keys(state, {"auth", "file", "redis", "public_metrics"}); !s) return s;
    OWL_TRY(read_optional(state, "auth", get_bool, config.state.auth));
    OWL_TRY(read_optional(state, "file", get_string, config.state.file));
    OWL_TRY(read_optional(state, "redis", get_string, config.state.redis));
    OWL_TRY(read_optional(state, "public_metrics", get_bool, config.state.public_metrics));
    if (!config.state.file.empty() && !config.state.redis.empty()) return state.error("give one of file and redis");
  }
  return {};
}

}  // namespace

core::Status parse_hosted(const core::At& at, ModelSpec& m) {
  auto url = get_string(at.child("base_url"));
  if (!url) return url.error();
  if (!url->starts_with("http://") && !url->starts_with("https://")) {
    return at.child("base_url").error("'{}' is not an http:// or https:// URL", *url);
  }
  while (url->ends_with('/')) url->pop_back();
  m.base_url = *url;
  return parse_upstream_options(at, m, *url);
}

// The keys of a model served elsewhere (hosted or nodes); `url` decides whether ca_file applies.
core::Status parse_upstream_options(const core::At& at, ModelSpec& m, std::string_view url) {
  OWL_TRY(read_optional(at, "model", get_string, m.model));
  OWL_TRY(read_optional(at, "api_key_env", get_string, m.api_key_env));
  if (!m.api_key_env.empty() && !valid_env_name(m.api_key_env)) {
    return at.child("api_key_env").error("'{}' is not an environment variable name (the key itself never goes in this file)", m.api_key_env);
  }
  if (At price = at.child("price"); price.present()) {
    if (auto s = only_keys(price, {"input_per_mtok", "output_per_mtok"}); !s) return s;
    OWL_TRY(read_optional(price, "input_per_mtok", number_in(0, 1e6), m.price.input_per_mtok));
    OWL_TRY(read_optional(price, "output_per_mtok", number_in(0, 1e6), m.price.output_per_mtok));
  }
  OWL_TRY(read_optional(at, "timeout_s", number_in(0.1, 3600), m.timeout_s));
  OWL_TRY(read_optional(at, "retries", int_in(0, 10), m.retries));
  OWL_TRY(read_optional(at, "ca_file", get_string, m.ca_file));
  if (!m.ca_file.empty()) {
    if (!url.starts_with("https://")) return at.child("ca_file").error("applies to https:// base URLs only");
    std::FILE* f = std::fopen(m.ca_file.c_str(), "rb");
    if (f == nullptr) return at.child("ca_file").error("{}: cannot be read", m.ca_file);
    std::fclose(f);
  }
  return {};
}


const ModelSpec* RouterConfig::find_model(std::string_view name) const {
  for (const ModelSpec& m : models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const char* sensitive_policy_name(SensitivePolicy policy) {
  switch (policy) {
    case SensitivePolicy::kLocalOnly: return "local_only";
    case SensitivePolicy::kBlock: return "block";
    case SensitivePolicy::kAllow: return "allow";
  }
  return "local_only";
}

core::Result<RouterConfig> parse_router_config(std::string_view yaml, std::string_view name) {
  RouterConfig config;
  config.file = std::string(name);
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) return core::make_error("{}: expected a mapping with models: and routes:", name);
    if (auto s = parse_root(At{name, root, ""}, config); !s) return s.error();
  } catch (const YAML::Exception& e) {
    return core::make_error("{}:{}: {}", name, e.mark.line + 1, e.msg);
  }
  return config;
}

core::Result<RouterConfig> load_router_config(const std::string& path) {
  auto text = core::read_file(path);
  if (!text) return text.error();
  return parse_router_config(*text, path);
}

}  // namespace owl::router

namespace owl::router {
namespace {

// Where the plain or quoted scalar starting at `pos` ends (flow: also at , ] }).
size_t scalar_end(std::string_view text, size_t pos, bool flow) {
  if (pos < text.size() && (text[pos] == '"' || text[pos] == '\'')) {
    const char q = text[pos];
    size_t i = pos + 1;
    while (i < text.size() && text[i] != q) i += (q == '"' && text[i] == '\\') ? 2 : 1;
    return std::min(i + 1, text.size());
  }
  size_t i = pos;
  while (i < text.size() && text[i] != '\n' && text[i] != '\r' && !(flow && (text[i] == ',' || text[i] == '}' || text[i] == ']')) &&
         !(text[i] == '#' && i > pos && (text[i - 1] == ' ' || text[i - 1] == '\t'))) {
    ++i;
  }
  while (i > pos && (text[i - 1] == ' ' || text[i - 1] == '\t')) --i;
  return i;
}

}  // namespace

core::Result<std::string> set_escalation_threshold(std::string_view yaml, std::string_view name, const std::string& route,
                                                   size_t step, const std::string& key, double value) {
  auto config = parse_router_config(yaml, name);
  if (!config) return config.error();
  std::string text(yaml);
  const std::string number = fmt::format("{:.4g}", value);
  try {
    const YAML::Node root = YAML::Load(text);
    const YAML::Node routes = root["routes"];
    std::optional<size_t> found;
    for (size_t i = 0; routes.IsSequence() && i < routes.size(); ++i) {
      if (routes[i]["name"].IsScalar() && routes[i]["name"].as<std::string>() == route) found = i;
    }
    if (!found) return core::make_error("{}: no route named '{}'", name, route);
    const YAML::Node cascade = routes[*found]["cascade"];
    if (step + 1 >= cascade.size()) {
      return core::make_error("{}: route '{}' has no step {} that escalates (its cascade has {} steps; the last never escalates)", name, route,
                              step, cascade.size());
    }
    const YAML::Node escalate = cascade[step]["escalate_if"];
    if (!escalate.IsMap()) return core::make_error("{}:{}: route '{}' step {}: escalate_if is not a mapping", name, cascade[step].Mark().line + 1, route, step);
    const bool flow = escalate.Style() == YAML::EmitterStyle::Flow;
    if (const YAML::Node v = escalate[key]; v.IsDefined() && !v.IsNull()) {
      const size_t pos = static_cast<size_t>(v.Mark().pos);
      text.replace(pos, scalar_end(text, pos, flow) - pos, number);
    } else if (flow) {
      const size_t brace = static_cast<size_t>(escalate.Mark().pos);
      if (brace >= text.size() || text[brace] != '{') return core::make_error("{}:{}: escalate_if: cannot find its '{{'", name, escalate.Mark().line + 1);
      text.insert(brace + 1, fmt::format("{}: {}{}", key, number, escalate.size() > 0 ? ", " : ""));
    } else {
      // A block mapping: the new key goes on a line of its own before the first, at its indentation.
      const size_t pos = static_cast<size_t>(escalate.Mark().pos);
      text.insert(pos, fmt::format("{}: {}\n{}", key, number, std::string(static_cast<size_t>(escalate.Mark().column), ' ')));
    }
  } catch (const YAML::Exception& e) {
    return core::make_error("{}:{}: {}", name, e.mark.line + 1, e.msg);
  }
  auto again = parse_router_config(text, name);
  if (!again) return core::make_error("{}: the file would no longer parse after setting {}: {}", name, key, again.message());
  for (const RouteSpec& r : again->routes) {
    if (r.name != route) continue;
    const Escalation& e = r.cascade[step].escalate_if;
    const std::optional<double> got = key == "mean_logprob_below" ? e.mean_logprob_below
                                    : key == "min_logprob_below"  ? e.min_logprob_below
                                    : key == "entropy_above"      ? e.entropy_above
                                                                  : std::nullopt;
    if (!got || fmt::format("{:.4g}", *got) != number) return core::make_error("{}: setting {} to {} did not take", name, key, number);
  }
  return text;
}

}  // namespace owl::router
