#include "eval/suite.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/files.h"
#include "core/yaml.h"
#include "gguf/file_type.h"

namespace owl::eval {
namespace {

// The YAML readers (At, get_*, read_optional, only_keys...).
using namespace core;

std::string resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || dir.empty()) return path;
  return (std::filesystem::path(dir) / path).lexically_normal().string();
}

// A YAML node as JSON: plain scalars become null, booleans and numbers where they read as one.
Json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : node) o[kv.first.as<std::string>()] = to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& item : node) a.push_back(to_json(item));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = node.Scalar();
      if (node.Tag() != "?") return s;  // quoted: a string
      if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
      bool b = false;
      if (YAML::convert<bool>::decode(node, b)) return b;
      int64_t i = 0;
      if (YAML::convert<int64_t>::decode(node, i)) return i;
      double d = 0;
      if (YAML::convert<double>::decode(node, d)) return d;
      return s;
    }
    default:
      return nullptr;
  }
}

template <typename... Args>
core::Error err(const std::string& where, fmt::format_string<Args...> format, Args&&... args) {
  return core::Error{fmt::format("{}: {}", where, fmt::format(format, std::forward<Args>(args)...))};
}

core::Result<double> json_number(const Json& j, const std::string& where, double min, double max) {
  if (!j.is_number()) return err(where, "expected a number, got {}", j.dump());
  const double v = j.get<double>();
  if (v < min || v > max) return err(where, "{} out of range {}..{}", v, min, max);
  return v;
}

core::Result<std::string> json_string(const Json& j, const std::string& where) {
  if (!j.is_string()) return err(where, "expected a string, got {}", j.dump());
  return j.get<std::string>();
}

core::Result<std::vector<std::string>> json_strings(const Json& j, const std::string& where) {
  if (j.is_string()) return std::vector<std::string>{j.get<std::string>()};
  if (!j.is_array()) return err(where, "expected a list of strings, got {}", j.dump());
  std::vector<std::string> out;
  for (const Json& item : j) {
    if (!item.is_string()) return err(where, "expected a list of strings, got {}", item.dump());
    out.push_back(item.get<std::string>());
  }
  return out;
}

// The names of the bare variables a prompt template uses: {{ name }}.
std::set<std::string> bare_variables(const std::string& source) {
  static const std::regex kVar(R"(\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\})");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(source.begin(), source.end(), kVar); it != std::sregex_iterator(); ++it) {
    names.insert((*it)[1].str());
  }
  return names;
}

core::Status check_case(const Case& c, const std::vector<ScorerSpec>& scorers, const std::set<std::string>& vars) {
  for (const std::string& v : vars) {
    if (!c.fields.contains(v)) return err(c.where, "case '{}' has no field '{}' that the prompt uses", c.id, v);
  }
  for (const ScorerSpec& s : scorers) {
    const bool needs_field = s.type == ScorerType::kExact || s.type == ScorerType::kContains || s.type == ScorerType::kNumeric ||
                             s.type == ScorerType::kRougeL || s.type == ScorerType::kJsonFields || s.type == ScorerType::kChoice ||
                             (s.type == ScorerType::kRegex && s.pattern.empty()) ||
                             (s.type == ScorerType::kJsonSchema && s.schema.is_null());
    if (needs_field && !c.fields.contains(s.field)) {
      return err(c.where, "case '{}' has no field '{}' for the {} scorer", c.id, s.field, s.label());
    }
    if (s.type == ScorerType::kChoice && s.labels.empty()) {
      const Json& labels = c.fields.contains("choices") ? c.fields["choices"] : Json();
      if (!labels.is_array() || labels.size() < 2) {
        return err(c.where, "case '{}': the choice scorer needs labels (in the scorer, or a 'choices' list of two or more in the case)", c.id);
      }
    }
  }
  return {};
}

core::Result<Case> case_from_json(Json j, const std::string& where, size_t index, const std::string& dir) {
  if (!j.is_object()) return err(where, "a case must be an object, got {}", j.dump().substr(0, 80));
  Case c;
  c.where = where;
  if (j.contains("id")) {
    const Json& id = j["id"];
    if (id.is_string()) c.id = id.get<std::string>();
    else if (id.is_number_integer()) c.id = std::to_string(id.get<int64_t>());
    else return err(where, "id must be a string or an integer, got {}", id.dump());
    if (c.id.empty()) return err(where, "empty id");
  } else {
    c.id = std::to_string(index + 1);
  }
  if (j.contains("scorers")) {
    if (!j["scorers"].is_array()) return err(where, "scorers must be a list");
    for (size_t i = 0; i < j["scorers"].size(); ++i) {
      auto s = scorer_from_json(j["scorers"][i], fmt::format("{}: scorers[{}]", where, i));
      if (!s) return s.error();
      if (s->type == ScorerType::kJsonSchema && s->schema.is_string()) {
        auto text = core::read_file(resolve(dir, s->schema.get<std::string>()));
        if (!text) return err(where, "scorers[{}].schema: {}", i, text.message());
        s->schema = Json::parse(*text, nullptr, false);
        if (s->schema.is_discarded()) return err(where, "scorers[{}].schema: not JSON", i);
      }
      c.scorers.push_back(std::move(*s));
    }
    j.erase("scorers");
  }
  c.fields = std::move(j);
  return c;
}

core::Status read_cases_file(const std::string& path, const std::string& shown, const std::string& dir, std::vector<Case>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::make_error("{}: cannot open the cases file: {}", shown, std::strerror(errno));
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", shown, n);
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) return err(where, "not a JSON object: {}", line.substr(0, 80));
    auto c = case_from_json(std::move(j), where, out.size(), dir);
    if (!c) return c.error();
    out.push_back(std::move(*c));
  }
  return {};
}

core::Status parse_cases(const At& at, Suite& suite) {
  if (!at.present()) return at.error("missing: a JSONL file of cases, or a list of them");
  if (at.node.IsScalar()) {
    const std::string rel = at.node.as<std::string>();
    return read_cases_file(resolve(suite.dir, rel), rel, suite.dir, suite.cases);
  }
  if (!at.node.IsSequence()) return at.error("expected a JSONL file name or a list of cases");
  for (size_t i = 0; i < at.node.size(); ++i) {
    const At item = at.item(i);
    auto c = case_from_json(to_json(item.node), fmt::format("{}:{}: {}", at.file, item.line(), item.path), i, suite.dir);
    if (!c) return c.error();
    suite.cases.push_back(std::move(*c));
  }
  return {};
}

core::Status parse_candidate(const At& at, const Suite& suite, std::vector<Candidate>& out) {
  if (auto s = only_keys(at, {"model", "name", "quantize", "adapters", "adapter_scale", "base_url", "api_key_env", "price",
                              "timeout_s", "retries", "ca_file"});
      !s) {
    return s;
  }
  if (at.child("base_url").present()) {
    for (std::string_view key : {"quantize", "adapters", "adapter_scale"}) {
      if (at.child(key).present()) return at.child(key).error("applies to local models only (this candidate has base_url)");
    }
    router::ModelSpec spec;
    OWL_TRY(router::parse_hosted(at, spec));
    if (spec.model.empty()) return at.child("model").error("missing: the upstream's model id");
    std::string name = spec.model;
    OWL_TRY(read_optional(at, "name", get_string, name));
    spec.name = name;
    spec.line = at.line();
    out.push_back(Candidate{.id = name, .hosted = spec});
    return {};
  }
  auto model = get_string(at.child("model"));
  if (!model) return model.error();
  const std::string path = resolve(suite.dir, *model);
  std::string stem = std::filesystem::path(*model).stem().string();
  OWL_TRY(read_optional(at, "name", get_string, stem));
  std::vector<std::string> quants = {""};
  if (at.child("quantize").present()) {
    auto q = get_strings(at.child("quantize"));
    if (!q) return q.error();
    for (std::string& t : *q) {
      const gguf::FileTypeInfo* info = gguf::find_file_type(t);
      if (info == nullptr) {
        std::vector<std::string_view> names;
        for (const auto& ft : gguf::file_types()) names.push_back(ft.name);
        return at.child("quantize").error("'{}' is not a type owl quantize writes (one of: {})", t, fmt::join(names, ", "));
      }
      quants.emplace_back(info->name);
    }
  }
  std::vector<std::string> adapters = {""};
  if (at.child("adapters").present()) {
    auto a = get_strings(at.child("adapters"));
    if (!a) return a.error();
    adapters.clear();
    for (const std::string& name : *a) adapters.push_back(name == "none" ? "" : resolve(suite.dir, name));
  }
  double scale = 1;
  OWL_TRY(read_optional(at, "adapter_scale", number_in(-100, 100), scale));
  for (const std::string& q : quants) {
    for (const std::string& a : adapters) {
      std::string id = stem;
      if (!q.empty()) id += ":" + q;
      if (!a.empty()) id += "+" + std::filesystem::path(a).stem().string();
      out.push_back(Candidate{.id = id, .model = path, .quant = q, .adapter = a, .adapter_scale = scale});
    }
  }
  return {};
}

core::Status parse_thresholds(const At& at, Thresholds& t) {
  if (!at.present()) return {};
  if (!at.node.IsMap()) return at.error("expected a mapping, e.g. {{pass_rate: 0.9}}");
  for (const auto& kv : at.node) {
    const std::string key = kv.first.as<std::string>();
    const At v = at.child(key);
    auto set = [&](std::optional<double>& field, double max) -> core::Status {
      auto n = get_number(v, 0, max);
      if (!n) return n.error();
      field = *n;
      return {};
    };
    if (key == "pass_rate") OWL_TRY(set(t.pass_rate, 1));
    else if (key == "use_lower_bound") {
      auto b = get_bool(v);
      if (!b) return b.error();
      t.use_lower_bound = *b;
    } else if (key == "latency_p50_ms") OWL_TRY(set(t.latency_p50_ms, 1e9));
    else if (key == "latency_p95_ms") OWL_TRY(set(t.latency_p95_ms, 1e9));
    else if (key == "ttft_p95_ms") OWL_TRY(set(t.ttft_p95_ms, 1e9));
    else if (key == "memory_mb") OWL_TRY(set(t.memory_mb, 1e9));
    else if (key == "size_mb") OWL_TRY(set(t.size_mb, 1e9));
    else if (key == "cost_usd") OWL_TRY(set(t.cost_usd, 1e9));
    else if (key == "json_valid") OWL_TRY(set(t.json_valid, 1));
    else if (key == "scores") {
      if (!v.node.IsMap()) return v.error("expected a mapping of scorer name to its least mean, e.g. {{rouge_l: 0.6}}");
      for (const auto& s : v.node) {
        auto n = get_number(v.child(s.first.as<std::string>()), 0, 1);
        if (!n) return n.error();
        t.scores.emplace_back(s.first.as<std::string>(), *n);
      }
    } else {
      At where = v;
      where.node = kv.first;
      return where.error("unknown threshold (known: pass_rate, use_lower_bound, latency_p50_ms, latency_p95_ms, ttft_p95_ms, "
                         "memory_mb, size_mb, cost_usd, json_valid, scores)");
    }
  }
  return {};
}

core::Status parse_root(const At& at, Suite& suite) {
  OWL_TRY(only_keys(at, {"name", "cases", "prompt", "system", "mode", "temperature", "top_p", "max_tokens", "stop", "seed",
                         "repeats", "ctx", "scorers", "case_pass", "candidates", "thresholds", "rank_by", "local_cost"}));
  suite.name = std::filesystem::path(suite.file).stem().string();
  OWL_TRY(read_optional(at, "name", get_string, suite.name));
  auto prompt = get_string(at.child("prompt"));
  if (!prompt) return prompt.error();
  suite.prompt = *prompt;
  auto parsed = tmpl::Template::parse(suite.prompt);
  if (!parsed) return at.child("prompt").error("{}", parsed.message());
  suite.prompt_template = std::move(*parsed);
  OWL_TRY(read_optional(at, "system", get_string, suite.system));
  if (!suite.system.empty()) {
    auto sys = tmpl::Template::parse(suite.system);
    if (!sys) return at.child("system").error("{}", sys.message());
    suite.system_template = std::move(*sys);
  }
  std::string mode = "completion";
  OWL_TRY(read_optional(at, "mode", get_string, mode));
  if (mode == "chat") suite.mode = Mode::kChat;
  else if (mode != "completion") return at.child("mode").error("'{}' is not a mode (completion or chat)", mode);
  if (suite.mode == Mode::kCompletion && !suite.system.empty()) {
    return at.child("system").error("a system message needs mode: chat");
  }
  OWL_TRY(read_optional(at, "temperature", number_in(0, 10), suite.temperature));
  OWL_TRY(read_optional(at, "top_p", number_in(0, 1), suite.top_p));
  OWL_TRY(read_optional(at, "max_tokens", int_in(0, 1 << 20), suite.max_tokens));
  OWL_TRY(read_optional(at, "stop", get_strings, suite.stop));
  for (const std::string& s : suite.stop) {
    if (s.empty()) return at.child("stop").error("an empty stop string");
  }
  OWL_TRY(read_optional(at, "seed", int_in(0, INT64_MAX), suite.seed));
  OWL_TRY(read_optional(at, "repeats", int_in(1, 1000), suite.repeats));
  OWL_TRY(read_optional(at, "ctx", int_in(16, 1 << 20), suite.ctx));
  OWL_TRY(read_optional(at, "case_pass", number_in(0, 1), suite.case_pass));
  if (At local = at.child("local_cost"); local.present()) {
    OWL_TRY(only_keys(local, {"per_core_hour"}));
    OWL_TRY(read_optional(local, "per_core_hour", number_in(0, 1e6), suite.local_per_core_hour));
  }

  const At scorers = at.child("scorers");
  if (!scorers.present()) return scorers.error("missing: a list of scorers, e.g. [{{type: exact}}]");
  if (!scorers.node.IsSequence() || scorers.node.size() == 0) return scorers.error("expected a list of one or more scorers");
  for (size_t i = 0; i < scorers.node.size(); ++i) {
    const At item = scorers.item(i);
    auto s = scorer_from_json(to_json(item.node), fmt::format("{}:{}: {}", at.file, item.line(), item.path));
    if (!s) return s.error();
    if (s->type == ScorerType::kJsonSchema && s->schema.is_string()) {
      auto text = core::read_file(resolve(suite.dir, s->schema.get<std::string>()));
      if (!text) return item.child("schema").error("{}", text.message());
      s->schema = Json::parse(*text, nullptr, false);
      if (s->schema.is_discarded()) return item.child("schema").error("the file is not JSON");
    }
    if (auto v = validate_scorer(*s); !v) return item.error("{}", v.message());
    suite.scorers.push_back(std::move(*s));
  }

  OWL_TRY(parse_cases(at.child("cases"), suite));
  if (suite.cases.empty()) return at.child("cases").error("no cases");
  const std::set<std::string> vars = bare_variables(suite.prompt + suite.system);
  std::set<std::string> ids;
  for (const Case& c : suite.cases) {
    if (!ids.insert(c.id).second) return err(c.where, "a second case with id '{}'", c.id);
    for (const ScorerSpec& s : c.scorers) {
      if (auto v = validate_scorer(s); !v) return err(c.where, "{}", v.message());
    }
    OWL_TRY(check_case(c, suite.scorers_of(c), vars));
  }

  const At candidates = at.child("candidates");
  if (!candidates.present() || !candidates.node.IsSequence() || candidates.node.size() == 0) {
    return candidates.error("expected a list of one or more candidates (model: file.gguf, or base_url + model)");
  }
  for (size_t i = 0; i < candidates.node.size(); ++i) OWL_TRY(parse_candidate(candidates.item(i), suite, suite.candidates));
  std::set<std::string> cids;
  for (const Candidate& c : suite.candidates) {
    if (!cids.insert(c.id).second) return candidates.error("the candidate '{}' appears twice (give one a name:)", c.id);
  }
  OWL_TRY(parse_thresholds(at.child("thresholds"), suite.thresholds));
  for (const auto& [name, least] : suite.thresholds.scores) {
    bool known = false;
    for (const ScorerSpec& s : suite.scorers) known = known || s.label() == name;
    if (!known) return at.child("thresholds").child("scores").error("no scorer is named '{}'", name);
  }
  std::string rank = "size";
  OWL_TRY(read_optional(at, "rank_by", get_string, rank));
  if (rank == "size") suite.rank_by = RankBy::kSize;
  else if (rank == "memory") suite.rank_by = RankBy::kMemory;
  else if (rank == "cost") suite.rank_by = RankBy::kCost;
  else if (rank == "latency") suite.rank_by = RankBy::kLatency;
  else return at.child("rank_by").error("'{}' is not one of size, memory, cost, latency", rank);
  return {};
}

}  // namespace

const char* rank_by_name(RankBy r) {
  switch (r) {
    case RankBy::kSize: return "size";
    case RankBy::kMemory: return "memory";
    case RankBy::kCost: return "cost";
    case RankBy::kLatency: return "latency";
  }
  return "size";
}

core::Result<ScorerSpec> scorer_from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) return err(where, "a scorer must be a mapping with a type, e.g. {{type: exact}}");
  static const std::set<std::string> kKeys = {"type", "name", "weight", "required", "threshold", "field", "normalize",
                                              "pattern", "schema", "labels", "tolerance", "rel_tolerance", "min", "max",
                                              "unit", "command", "timeout_s", "model", "base_url", "api_key_env", "rubric",
                                              "parse", "scale", "max_tokens"};
  for (const auto& [key, value] : j.items()) {
    if (!kKeys.contains(key)) return err(where, "unknown key '{}' (known: {})", key, fmt::join(kKeys, ", "));
  }
  if (!j.contains("type")) return err(where, "missing type");
  auto type_name = json_string(j["type"], where + ".type");
  if (!type_name) return type_name.error();
  const auto type = scorer_type_from(*type_name);
  if (!type) {
    return err(where, "'{}' is not a scorer (exact, contains, regex, json_valid, json_schema, json_fields, choice, rouge_l, "
                      "numeric, length, judge, command)", *type_name);
  }
  ScorerSpec s;
  s.type = *type;
  if (s.type == ScorerType::kRougeL || s.type == ScorerType::kJudge) s.threshold = 0.5;
  auto str = [&](const char* key, std::string& out) -> core::Status {
    if (!j.contains(key)) return {};
    auto v = json_string(j[key], where + "." + key);
    if (!v) return v.error();
    out = *v;
    return {};
  };
  auto num = [&](const char* key, double& out, double min, double max) -> core::Status {
    if (!j.contains(key)) return {};
    auto v = json_number(j[key], where + "." + key, min, max);
    if (!v) return v.error();
    out = *v;
    return {};
  };
  OWL_TRY(str("name", s.name));
  OWL_TRY(num("weight", s.weight, 0, 1e6));
  if (j.contains("required")) {
    if (!j["required"].is_boolean()) return err(where, "required: expected true or false");
    s.required = j["required"].get<bool>();
  }
  OWL_TRY(num("threshold", s.threshold, 0, 1));
  OWL_TRY(str("field", s.field));
  if (j.contains("normalize")) {
    auto list = json_strings(j["normalize"], where + ".normalize");
    if (!list) return list.error();
    for (const std::string& n : *list) {
      if (n == "trim") s.normalize.push_back(Normalize::kTrim);
      else if (n == "case") s.normalize.push_back(Normalize::kCase);
      else if (n == "whitespace") s.normalize.push_back(Normalize::kWhitespace);
      else return err(where, "normalize: '{}' is not trim, case or whitespace", n);
    }
  }
  OWL_TRY(str("pattern", s.pattern));
  if (j.contains("schema")) {
    if (!j["schema"].is_object() && !j["schema"].is_string() && !j["schema"].is_boolean()) {
      return err(where, "schema: expected a JSON Schema (a mapping) or the name of a .json file");
    }
    s.schema = j["schema"];
  }
  if (j.contains("labels")) {
    auto labels = json_strings(j["labels"], where + ".labels");
    if (!labels) return labels.error();
    if (labels->size() < 2) return err(where, "labels: a choice needs two or more labels");
    s.labels = std::move(*labels);
  }
  OWL_TRY(num("tolerance", s.tolerance, 0, 1e300));
  OWL_TRY(num("rel_tolerance", s.rel_tolerance, 0, 1e6));
  if (j.contains("min")) {
    double v = 0;
    OWL_TRY(num("min", v, 0, 1e12));
    s.min = static_cast<int64_t>(v);
  }
  if (j.contains("max")) {
    double v = 0;
    OWL_TRY(num("max", v, 0, 1e12));
    s.max = static_cast<int64_t>(v);
  }
  OWL_TRY(str("unit", s.unit));
  if (s.unit != "chars" && s.unit != "words" && s.unit != "tokens") return err(where, "unit: '{}' is not chars, words or tokens", s.unit);
  if (j.contains("command")) {
    if (j["command"].is_string()) {
      // A string is split at spaces; a list is taken as the argv.
      std::string word;
      for (char c : j["command"].get<std::string>()) {
        if (c == ' ') {
          if (!word.empty()) s.command.push_back(std::move(word));
          word.clear();
        } else {
          word += c;
        }
      }
      if (!word.empty()) s.command.push_back(std::move(word));
    } else {
      auto argv = json_strings(j["command"], where + ".command");
      if (!argv) return argv.error();
      s.command = std::move(*argv);
    }
  }
  OWL_TRY(num("timeout_s", s.timeout_s, 0.01, 3600));
  OWL_TRY(str("model", s.judge.model));
  OWL_TRY(str("base_url", s.judge.base_url));
  OWL_TRY(str("api_key_env", s.judge.api_key_env));
  OWL_TRY(str("rubric", s.judge.rubric));
  OWL_TRY(str("parse", s.judge.parse));
  OWL_TRY(num("scale", s.judge.scale, 1e-9, 1e9));
  if (j.contains("max_tokens")) {
    double v = 0;
    OWL_TRY(num("max_tokens", v, 1, 1 << 20));
    s.judge.max_tokens = static_cast<int64_t>(v);
  }
  const bool judge_keys = j.contains("model") || j.contains("base_url") || j.contains("rubric") || j.contains("parse") ||
                          j.contains("scale") || j.contains("api_key_env") || j.contains("max_tokens");
  if (judge_keys && s.type != ScorerType::kJudge) return err(where, "model, base_url, rubric, parse, scale and max_tokens apply to judge scorers only");
  return s;
}

core::Result<std::string> Suite::render_prompt(const Case& c) const {
  auto text = prompt_template->render(c.fields);
  if (!text) return err(c.where, "case '{}': prompt: {}", c.id, text.message());
  return std::move(*text);
}

core::Result<std::string> Suite::render_system(const Case& c) const {
  if (!system_template) return std::string();
  auto text = system_template->render(c.fields);
  if (!text) return err(c.where, "case '{}': system: {}", c.id, text.message());
  return std::move(*text);
}

core::Result<Suite> parse_suite(std::string_view yaml, std::string_view name, const std::string& dir) {
  Suite suite;
  suite.file = std::string(name);
  suite.dir = dir;
  try {
    (void)Json(std::string(yaml)).dump();  // names the first byte that is not UTF-8
  } catch (const Json::exception& e) {
    return core::make_error("{}: not UTF-8 text: {}", name, e.what());
  }
  try {
    auto root = core::load_yaml(yaml, name);
    if (!root) return root.error();
    if (!root->IsMap()) return core::make_error("{}: expected a mapping with cases:, prompt:, scorers: and candidates:", name);
    OWL_TRY(parse_root(At{name, *root, ""}, suite));
  } catch (const YAML::Exception& e) {
    return core::make_error("{}:{}: {}", name, e.mark.line + 1, e.msg);
  }
  return suite;
}

core::Result<Suite> load_suite(const std::string& path) {
  auto text = core::read_file(path);
  if (!text) return text.error();
  return parse_suite(*text, path, std::filesystem::path(path).parent_path().string());
}

}  // namespace owl::eval
