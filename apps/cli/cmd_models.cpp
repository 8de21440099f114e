// owl models: versions of a model with aliases (prod, canary), promotion gated by an eval suite,
// and rollback, kept in the state store beside the API keys. Servers that serve a model as
// `registry: ALIAS` switch to the version the alias names without a restart.
#include <ctime>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/files.h"
#include "core/utc.h"
#include "eval/gate.h"
#include "format.h"
#include "common_options.h"
#include "lora_options.h"
#include "state_file.h"

namespace owl::cli {
namespace {

struct ModelsArgs {
  std::string state, redis;
  std::string name, file, version;
  LoraArgs lora;
  std::string alias = "prod";
  std::string suite;
  std::string report;
  std::string cache_dir;
  bool force = false;
  bool json = false;
  int threads = 0;
};

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

std::string when(int64_t unix_s) { return core::format_utc(unix_s, "%Y-%m-%dT%H:%MZ"); }

nlohmann::json record_json(const serve::ModelRecord& r, bool with_reports) {
  nlohmann::json versions = nlohmann::json::array(), history = nlohmann::json::array(), aliases = nlohmann::json::object();
  for (const serve::ModelVersion& v : r.versions) {
    nlohmann::json lora = nlohmann::json::array();
    for (const auto& [file, scale] : v.lora) lora.push_back({{"file", file}, {"scale", scale}});
    versions.push_back({{"version", v.version}, {"file", v.file}, {"sha256", v.sha256}, {"size_bytes", v.size_bytes}, {"lora", lora},
                        {"added", when(v.added_unix)}});
  }
  for (const auto& [alias, version] : r.aliases) aliases[alias] = version;
  for (const serve::VersionEvent& e : r.history) {
    nlohmann::json h = {{"at", when(e.unix_s)}, {"action", e.action}, {"alias", e.alias}, {"version", e.version},
                        {"previous", e.previous}, {"why", e.why}};
    if (with_reports && !e.report.is_null()) h["report"] = e.report;
    history.push_back(std::move(h));
  }
  return {{"name", r.name}, {"aliases", aliases}, {"versions", versions}, {"history", history}};
}

int run_add(ModelsArgs& a) {
  if (auto s = finish_lora_args(a.lora); !s) return fail("owl models add", s.message());
  auto versions = open_model_versions(a.state, a.redis);
  if (!versions) return fail("owl models add", versions.message());
  std::vector<std::pair<std::string, double>> lora;
  for (const LoraSpec& l : a.lora.specs) lora.emplace_back(l.path, l.scale);
  auto added = (*versions)->add(a.name, a.file, std::move(lora), a.version, now_unix());
  if (!added) return fail("owl models add", added.message());
  fmt::print("{}@{}: {} ({}, sha256 {})\n", a.name, added->version, added->file, human_bytes(added->size_bytes), added->sha256.substr(0, 16));
  return 0;
}

int run_list(const ModelsArgs& a) {
  auto versions = open_model_versions(a.state, a.redis);
  if (!versions) return fail("owl models list", versions.message());
  auto all = (*versions)->list();
  if (!all) return fail("owl models list", all.message());
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const serve::ModelRecord& r : *all) out.push_back(record_json(r, false));
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return 0;
  }
  fmt::print("{:<20} {:<8} {:<12} {:>10} {:<17} {:<16} {}\n", "NAME", "VERSION", "ALIASES", "SIZE", "ADDED", "SHA256", "FILE");
  for (const serve::ModelRecord& r : *all) {
    for (const serve::ModelVersion& v : r.versions) {
      std::vector<std::string> names;
      for (const auto& [alias, version] : r.aliases) {
        if (version == v.version) names.push_back(alias);
      }
      fmt::print("{:<20} {:<8} {:<12} {:>10} {:<17} {:<16} {}{}\n", r.name, v.version, names.empty() ? "-" : fmt::format("{}", fmt::join(names, ",")),
                 human_bytes(v.size_bytes), when(v.added_unix), v.sha256.substr(0, 16), v.file,
                 v.lora.empty() ? "" : fmt::format(" + {} adapter{}", v.lora.size(), v.lora.size() > 1 ? "s" : ""));
    }
  }
  return 0;
}

int run_show(const ModelsArgs& a) {
  auto versions = open_model_versions(a.state, a.redis);
  if (!versions) return fail("owl models show", versions.message());
  auto r = (*versions)->get(a.name);
  if (!r) return fail("owl models show", r.message());
  if (!*r) return fail("owl models show", fmt::format("no model named '{}' (owl models add)", a.name));
  fmt::print("{}\n", record_json(**r, a.json).dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
  return 0;
}

// The eval candidate of a version: its file and (one) adapter.
core::Result<eval::Candidate> candidate_of(const std::string& name, const serve::ModelVersion& v) {
  if (v.lora.size() > 1) return core::make_error("{}@{} has {} adapters; the eval gate runs one", name, v.version, v.lora.size());
  eval::Candidate c{.id = fmt::format("{}@{}", name, v.version), .model = v.file};
  if (!v.lora.empty()) c.adapter = v.lora[0].first, c.adapter_scale = v.lora[0].second;
  return c;
}

int run_promote(const ModelsArgs& a) {
  constexpr const char* kCommand = "owl models promote";
  auto versions = open_model_versions(a.state, a.redis);
  if (!versions) return fail(kCommand, versions.message());
  auto record = (*versions)->get(a.name);
  if (!record) return fail(kCommand, record.message());
  if (!*record) return fail(kCommand, fmt::format("no model named '{}' (owl models add)", a.name));
  const serve::ModelVersion* candidate = (*record)->find(a.version);
  if (candidate == nullptr) return fail(kCommand, fmt::format("'{}' has no version {}", a.name, a.version));
  const serve::ModelVersion* serving = (*record)->aliased(a.alias);
  if (serving != nullptr && serving->version == candidate->version) {
    return fail(kCommand, fmt::format("{}@{} is {} already", a.name, a.alias, a.version));
  }
  serve::VersionEvent event{.unix_s = now_unix(), .action = "promote", .alias = a.alias, .version = candidate->version,
                            .previous = serving != nullptr ? serving->version : ""};
  if (a.suite.empty()) {
    if (!a.force) return fail(kCommand, "give --eval SUITE.yaml (the gate), or --force to promote without one");
    event.why = "promoted without an eval (--force)";
  } else {
    auto suite = eval::load_suite(a.suite);
    if (!suite) return fail(kCommand, suite.message());
    auto cand = candidate_of(a.name, *candidate);
    if (!cand) return fail(kCommand, cand.message());
    std::optional<eval::Candidate> base;
    if (serving != nullptr) {
      auto b = candidate_of(a.name, *serving);
      if (!b) return fail(kCommand, b.message());
      base = *b;
    }
    eval::RunOptions options{.cache_dir = a.cache_dir.empty() ? eval::default_cache_dir() : a.cache_dir, .n_threads = a.threads};
    options.on_note = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
    fmt::print(stderr, "owl models: evaluating {}@{}{} on {}\n", a.name, candidate->version,
               serving != nullptr ? fmt::format(" against {}@{} ({})", a.name, a.alias, serving->version) : "", a.suite);
    auto gate = eval::run_gate(std::move(*suite), base, *cand, options);
    if (!gate) return fail(kCommand, gate.message());
    event.why = gate->why;
    event.report = gate->report;
    if (!gate->promote) event.action = "refuse";
    if (!a.report.empty()) {
      if (auto s = core::write_file_atomic(a.report, gate->report.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n"); !s) return fail(kCommand, s.message());
    }
  }
  if (auto s = (*versions)->record(a.name, event); !s) return fail(kCommand, s.message());
  if (event.action == "refuse") {
    fmt::print("{}@{} stays {}: {}\n", a.name, a.alias, event.previous.empty() ? "unset" : event.previous, event.why);
    return 3;  // as owl eval: the candidate does not pass
  }
  fmt::print("{}@{}: {} -> {}: {}\n", a.name, a.alias, event.previous.empty() ? "(none)" : event.previous, event.version, event.why);
  return 0;
}

int run_rollback(const ModelsArgs& a) {
  auto versions = open_model_versions(a.state, a.redis);
  if (!versions) return fail("owl models rollback", versions.message());
  auto event = (*versions)->rollback(a.name, a.alias, now_unix());
  if (!event) return fail("owl models rollback", event.message());
  fmt::print("{}@{}: {} -> {}\n", a.name, a.alias, event->previous, event->version);
  return 0;
}

}  // namespace

Command register_models(CLI::App& root) {
  CLI::App* app = root.add_subcommand("models", "Model versions: add, list, show, promote (gated by an eval suite), rollback");
  app->require_subcommand(1);
  auto a = std::make_shared<ModelsArgs>();
  app->add_option("--state", a->state, "State file (default: $OWL_STATE, else ~/.owl/state.db)");
  app->add_option("--redis", a->redis, "Keep the versions in Redis instead, shared by nodes: redis://HOST:PORT[/DB]");
  auto store_options = [a](CLI::App* sub) {
    sub->add_option("--state", a->state, "State file (default: $OWL_STATE, else ~/.owl/state.db)");
    sub->add_option("--redis", a->redis, "Keep the versions in Redis instead, shared by nodes: redis://HOST:PORT[/DB]");
  };
  CLI::App* add = app->add_subcommand("add", "Record a new version of a model: its file (hashed now) and adapters");
  add->add_option("name", a->name, "The model's name (the id servers serve it as)")->required();
  add->add_option("file", a->file, "Its GGUF file")->required();
  add->add_option("--version", a->version, "The version's name (default: v1, v2, ...)");
  add->add_option("--lora", a->lora.files, "A LoRA adapter FILE[:SCALE] applied to every request (repeatable)");
  a->lora.scale_suffix = true;
  CLI::App* list = app->add_subcommand("list", "Every model's versions and aliases");
  list->add_flag("--json", a->json, "As JSON");
  CLI::App* show = app->add_subcommand("show", "One model's versions, aliases and history, as JSON");
  show->add_option("name", a->name, "The model's name")->required();
  show->add_flag("--reports", a->json, "With the eval report of each decision");
  CLI::App* promote = app->add_subcommand("promote", "Point an alias at a version once an eval suite says it may replace the one there");
  promote->add_option("name", a->name, "The model's name")->required();
  promote->add_option("version", a->version, "The candidate version")->required();
  promote->add_option("--alias", a->alias, "The alias to move")->capture_default_str();
  promote->add_option("--eval", a->suite, "The eval suite (owl eval's YAML) both versions run; its candidates are ignored");
  promote->add_option("--report", a->report, "Write the eval report (report.json's shape) here too");
  promote->add_option("--cache-dir", a->cache_dir, "owl eval's cache (default: ~/.cache/owl/eval)");
  promote->add_option("-t,--threads", a->threads, "Threads (0: all cores)");
  promote->add_flag("--force", a->force, "Promote without an eval");
  CLI::App* rollback = app->add_subcommand("rollback", "Point an alias back at the version it named before");
  rollback->add_option("name", a->name, "The model's name")->required();
  rollback->add_option("--alias", a->alias, "The alias to move back")->capture_default_str();
  for (CLI::App* sub : {add, list, show, promote, rollback}) store_options(sub);
  return {app, [a, add, list, show, promote, rollback] {
            if (add->parsed()) return run_add(*a);
            if (list->parsed()) return run_list(*a);
            if (show->parsed()) return run_show(*a);
            if (promote->parsed()) return run_promote(*a);
            if (rollback->parsed()) return run_rollback(*a);
            return 1;
          }};
}

}  // namespace owl::cli
