// owl serve: the OpenAI-compatible server with continuous batching, metrics and a chat page.
// Every option is checked first; then the socket is bound (so /health answers "loading" while
// the model loads) and the model loaded. Any failure exits 1 with one line naming the cause.
// SIGTERM or SIGINT before "ready" exits at once (128 + the signal); after it, the first one
// drains (new requests get 503, running ones finish, cancelled after --drain-timeout) and exits
// 0, and a second one exits at once.
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/ranges.h>

#include "chat_template.h"
#include "commands.h"
#include "common_options.h"
#include "format.h"
#include "engine/engine.h"
#include "router/config.h"
#include "router/hosted_provider.h"
#include "router/local_provider.h"
#include "router/node_pool.h"
#include "router/route_provider.h"
#include "serve/api.h"
#include "serve/key_guard.h"
#include "serve/versioned_model.h"
#include "serve/request_log.h"
#include "serve/server.h"
#include "state_file.h"

namespace owl::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string config;
  std::string ledger;
  serve::RequestLogOptions log_file;
  double log_max_mb = 100;
  bool auth = false;
  std::string state;
  std::string redis;
  std::string alias;
  std::string host = "127.0.0.1";
  int port = 8080;
  engine::EngineOptions engine;
  std::string chat_template_file;
  std::string chat_format = "chatml";
  serve::ServerOptions server;
  std::vector<std::string> lora;                          // NAME=FILE or FILE
  std::vector<std::pair<std::string, std::string>> lora_scaled;  // (NAME=FILE or FILE, scale)
  double drain_timeout_s = 30;
  int n_gpu_layers = 0;
};

// SIGTERM and SIGINT, waited for on a thread of their own: they are blocked in every other
// thread (those started after the constructor inherit the mask). One per process, never destroyed.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    std::thread([this] { run(); }).detach();
  }
  // From now on a signal starts the drain (wait() returns it) instead of ending the process.
  void ready() {
    std::lock_guard<std::mutex> lock(mutex_);
    ready_ = true;
  }
  int wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    got_.wait(lock, [&] { return signal_ != 0; });
    return signal_;
  }

 private:
  static const char* name(int signal) { return signal == SIGTERM ? "SIGTERM" : "SIGINT"; }
  [[noreturn]] static void exit_now(int signal, const char* when) {
    std::fprintf(stderr, "owl serve: %s received %s: stopped\n", name(signal), when);
    std::fflush(stderr);
    std::_Exit(128 + signal);
  }
  void run() {
    for (;;) {
      int signal = 0;
      if (sigwait(&set_, &signal) != 0) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!ready_) exit_now(signal, "before the model was ready");
      const auto now = std::chrono::steady_clock::now();
      if (signal_ != 0) {
        // One signal sent twice at once (`timeout` signals the child and then its process
        // group) is not a second request to stop.
        if (now - first_at_ < std::chrono::milliseconds(100)) continue;
        exit_now(signal, "again while draining");
      }
      signal_ = signal;
      first_at_ = now;
      got_.notify_all();
    }
  }

  sigset_t set_;
  std::mutex mutex_;
  std::condition_variable got_;
  bool ready_ = false;
  int signal_ = 0;
  std::chrono::steady_clock::time_point first_at_;
};

// A LoRA adapter to load with a model: a named one (--lora) that requests pick, or one of a
// configured model (`lora:`) that every request runs with.
struct AdapterEntry {
  std::string name;   // --lora: the name in the model id BASE:NAME
  std::string path;
  float scale = 1.0f;
  std::string where;  // for messages: "--lora", or the config's "file:line"
};

// A model this process runs: from -m, or a local model of --config.
struct LocalEntry {
  std::string name;
  std::string path;
  engine::EngineOptions engine;
  std::vector<AdapterEntry> named;  // served as BASE:NAME
  std::vector<AdapterEntry> fixed;  // applied to every request
  std::string registry_alias;       // a registry model: the alias followed ("" for a file)
  serve::ModelVersion version;      // and the version it names at start
};

// What to serve, once the arguments and the config were checked.
struct Plan {
  std::vector<LocalEntry> locals;
  std::shared_ptr<serve::ModelVersions> versions;  // when a model comes from the registry
  std::optional<router::RouterConfig> config;
  std::shared_ptr<const router::SensitiveDetector> detector;
};

core::Status check_model_file(const std::string& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return core::make_error("{} {}: {}", what, path, std::filesystem::exists(path, ec) ? "not a regular file" : "no such file");
  }
  return {};
}

// A registry model: the version its alias names now, with its adapters.
core::Status resolve_version(const ServeArgs& a, const router::ModelSpec& m, Plan& plan, LocalEntry& entry) {
  const std::string where = fmt::format("{}:{}: model '{}': registry", a.config, m.line, m.name);
  if (!plan.versions) {
    auto versions = open_model_versions(a.state, a.redis);
    if (!versions) return core::make_error("{}: {}", where, versions.message());
    plan.versions = *versions;
  }
  auto record = plan.versions->get(m.name);
  if (!record) return core::make_error("{}: {}", where, record.message());
  const serve::ModelVersion* v = *record ? (*record)->aliased(m.registry) : nullptr;
  if (v == nullptr) return core::make_error("{}: '{}@{}' names no version (owl models add, then owl models promote)", where, m.name, m.registry);
  entry.path = v->file;
  entry.registry_alias = m.registry;
  entry.version = *v;
  for (const auto& [file, scale] : v->lora) entry.fixed.push_back({.path = file, .scale = static_cast<float>(scale), .where = where});
  return {};
}

// The models and routes of --config: local files exist, keys are in the environment.
core::Status plan_config(ServeArgs& a, Plan& plan) {
  auto config = router::load_router_config(a.config);
  if (!config) return config.error();
  // The config's state: block, unless the command line names a store.
  const router::StateSpec& state = config->state;
  if (a.state.empty() && a.redis.empty()) a.state = state.file, a.redis = state.redis;
  a.auth = a.auth || state.auth;
  a.server.public_metrics = a.server.public_metrics || state.public_metrics;
  for (const router::ModelSpec& m : config->models) {
    if (m.local()) {
      LocalEntry entry{.name = m.name, .path = m.path, .engine = a.engine};
      if (!m.registry.empty()) OWL_TRY(resolve_version(a, m, plan, entry));
      if (auto s = check_model_file(entry.path, fmt::format("{}:{}: model '{}': {}", a.config, m.line, m.name,
                                                            m.registry.empty() ? "path" : "registry " + entry.version.version));
          !s) {
        return s;
      }
      for (const router::LoraSpec& l : m.lora) {
        const std::string where = fmt::format("{}:{}", a.config, l.line);
        if (auto s = check_model_file(l.path, fmt::format("{}: model '{}': lora", where, m.name)); !s) return s;
        entry.fixed.push_back({.path = l.path, .scale = static_cast<float>(l.scale), .where = where});
      }
      if (m.parallel > 0) entry.engine.n_parallel = m.parallel;
      if (m.ctx > 0) entry.engine.n_ctx = m.ctx;
      if (auto s = entry.engine.validate(); !s) return core::make_error("{}:{}: model '{}': {}", a.config, m.line, m.name, s.message());
      plan.locals.push_back(std::move(entry));
    } else if (!m.api_key_env.empty() && std::getenv(m.api_key_env.c_str()) == nullptr) {
      return core::make_error("{}:{}: model '{}': the environment variable {} (api_key_env) is not set", a.config, m.line,
                              m.name, m.api_key_env);
    }
  }
  router::SensitiveOptions detectors{.builtin = config->detectors};
  for (const router::CustomDetectorSpec& c : config->custom_detectors) {
    detectors.custom.push_back({.name = c.name, .regex = c.regex, .words = c.words});
  }
  auto detector = router::SensitiveDetector::make(detectors);
  if (!detector) return core::make_error("{}: {}", a.config, detector.message());
  plan.detector = std::make_shared<const router::SensitiveDetector>(std::move(*detector));
  plan.config = std::move(*config);
  return {};
}

// --lora NAME=FILE or FILE (the file's stem names it), and --lora-scaled's with their scales.
core::Result<std::vector<AdapterEntry>> named_adapters(const ServeArgs& a) {
  std::vector<std::pair<std::string, double>> given;
  for (const std::string& l : a.lora) given.emplace_back(l, 1.0);
  for (const auto& [arg, text] : a.lora_scaled) {
    char* end = nullptr;
    const double scale = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0') return core::make_error("--lora-scaled {} {}: the scale is not a number", arg, text);
    given.emplace_back(arg, scale);
  }
  std::vector<AdapterEntry> out;
  for (const auto& [arg, scale] : given) {
    AdapterEntry e{.scale = static_cast<float>(scale), .where = "--lora"};
    // NAME=FILE when what comes before '=' is a name; otherwise a file (whose path may hold '=').
    const size_t eq = arg.find('=');
    if (eq != std::string::npos && router::AdapterCatalog::check_name(arg.substr(0, eq))) {
      e.name = arg.substr(0, eq);
      e.path = arg.substr(eq + 1);
    } else {
      e.path = arg;
      e.name = std::filesystem::path(arg).stem().string();
      if (auto s = router::AdapterCatalog::check_name(e.name); !s) {
        return core::make_error("--lora {}: {}; give NAME=FILE", arg, s.message());
      }
    }
    if (!std::isfinite(scale) || std::abs(scale) > router::kMaxAdapterScale) {
      return core::make_error("--lora-scaled {} {}: the scale is outside [-{}, {}]", arg, scale, router::kMaxAdapterScale,
                              router::kMaxAdapterScale);
    }
    if (auto s = check_model_file(e.path, fmt::format("--lora {}:", e.name)); !s) return s.error();
    for (const AdapterEntry& earlier : out) {
      if (earlier.name == e.name) return core::make_error("--lora: two adapters are named '{}'", e.name);
    }
    out.push_back(std::move(e));
  }
  return out;
}

// What can be checked before binding and loading, so that a typo fails at once.
core::Status check_args(ServeArgs& a, Plan& plan) {
  if (auto s = a.engine.validate(); !s) return s;
  if (!std::isfinite(a.drain_timeout_s) || a.drain_timeout_s < 0 || a.drain_timeout_s > 86400) {
    return core::make_error("--drain-timeout {} out of range 0..86400 seconds", a.drain_timeout_s);
  }
  if (a.server.max_body_bytes < 1024 || a.server.max_body_bytes > (size_t{1} << 30)) {
    return core::make_error("--max-body {} out of range 1024..{} bytes", a.server.max_body_bytes, size_t{1} << 30);
  }
  if (a.server.max_connections < 1 || a.server.max_connections > 65536) {
    return core::make_error("--max-connections {} out of range 1..65536", a.server.max_connections);
  }
  if (a.server.default_max_tokens == 0 || a.server.default_max_tokens < -1) {
    return core::make_error("-n/--n-predict {} must be -1 (until the context is full) or at least 1",
                            a.server.default_max_tokens);
  }
  if (tmpl::builtin_format(a.chat_format) == nullptr) {
    return core::make_error("--chat-format '{}' is not one of: {}", a.chat_format,
                            fmt::join(tmpl::builtin_format_names(), ", "));
  }
  if (!a.chat_template_file.empty()) {
    auto source = core::read_file(a.chat_template_file);
    if (!source) return source.error();
    if (auto t = tmpl::Template::parse(*source); !t) {
      return core::make_error("--chat-template {}: {}", a.chat_template_file, t.message());
    }
  }
  if (a.model.empty() == a.config.empty()) return core::make_error("give one of -m/--model (one model) or --config (models and routes)");
  if (!a.config.empty() && (!a.lora.empty() || !a.lora_scaled.empty())) {
    return core::make_error("--lora names adapters of -m's model; with --config give a model `lora:` (docs/router.md), or load "
                            "adapters with POST /lora-adapters (--lora-runtime)");
  }
  if (!a.config.empty()) return plan_config(a, plan);
  if (auto s = check_model_file(a.model, "--model"); !s) return s;
  auto named = named_adapters(a);
  if (!named) return named.error();
  plan.locals.push_back({.name = a.alias.empty() ? std::filesystem::path(a.model).stem().string() : a.alias, .path = a.model,
                         .engine = a.engine, .named = std::move(*named)});
  return {};
}

struct Loaded {
  std::unique_ptr<model::Model> model;
  std::optional<tokenizer::Tokenizer> tokenizer;
  std::optional<tmpl::Template> chat_template;
  std::unique_ptr<engine::Engine> engine;
  std::string chat_template_source;
  std::shared_ptr<const model::AdapterSet> fixed;   // null: none
  std::shared_ptr<router::AdapterCatalog> catalog;  // the adapters requests pick
};

// The model's adapters: those every request runs with, and the named ones.
core::Status load_adapters(const LocalEntry& entry, std::shared_ptr<router::AdapterIds> ids, Loaded& out) {
  if (!entry.fixed.empty()) {
    auto set = std::make_shared<model::AdapterSet>();
    for (const AdapterEntry& a : entry.fixed) {
      auto adapter = model::load_lora(a.path, *out.model);
      if (!adapter) return core::make_error("{}: lora: {}", a.where, adapter.message());
      set->adapters.emplace_back(std::move(*adapter), a.scale);
    }
    out.fixed = std::move(set);
  }
  out.catalog = std::make_shared<router::AdapterCatalog>(*out.model, std::move(ids));
  for (const AdapterEntry& a : entry.named) {
    if (auto loaded = out.catalog->load(a.name, a.path, a.scale); !loaded) return core::make_error("--lora {}: {}", a.name, loaded.message());
  }
  return {};
}

core::Status load(const ServeArgs& args, const LocalEntry& entry, std::shared_ptr<router::AdapterIds> adapter_ids,
                  serve::Metrics& metrics, Loaded& out) {
  auto model = model::load_model(entry.path);
  if (!model) return model.error();
  out.model = std::move(*model);
  OWL_TRY(load_adapters(entry, std::move(adapter_ids), out));
  auto tok = tokenizer::Tokenizer::load(out.model->file);
  if (!tok) return tok.error();
  out.tokenizer.emplace(std::move(*tok));
  auto source = choose_chat_template(args.chat_template_file, args.chat_format, out.model->file, "owl serve");
  if (!source) return source.error();
  auto chat_template = tmpl::Template::parse(*source);
  if (!chat_template) return core::make_error("chat template: {}", chat_template.message());
  out.chat_template.emplace(std::move(*chat_template));
  out.chat_template_source = *source;
  engine::EngineOptions options = entry.engine;
  options.warm_up = true;
  auto engine = engine::Engine::make(*out.model, *out.tokenizer, &metrics, options);
  if (!engine) return engine.error();
  out.engine = std::move(*engine);
  return {};
}

// After a signal: new requests get 503, running ones finish or are cancelled after the timeout.
void drain(serve::Server& server, const serve::ModelRegistry& models, const std::vector<std::unique_ptr<Loaded>>& locals,
           double timeout_s) {
  server.drain();
  for (const auto& l : locals) l->engine->stop(false);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  for (const auto& l : locals) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (l->engine->wait_idle(std::max(left, std::chrono::milliseconds(0)))) continue;
    fmt::print(stderr, "owl serve: cancelling the requests still running after {} s\n", timeout_s);
    for (const auto& other : locals) other->engine->stop(true);
    for (const auto& other : locals) other->engine->wait_idle(std::chrono::seconds(5));
    break;
  }
  // Answers relayed from hosted models have no engine here: they get what is left of the
  // timeout, then are cancelled (the client hears that the answer was cut).
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
  if (!server.wait_streams(std::max(left, std::chrono::milliseconds(0)))) {
    fmt::print(stderr, "owl serve: cancelling the relayed answers still running after {} s\n", timeout_s);
    models.cancel_running();
    server.wait_streams(std::chrono::seconds(5));
  }
  server.stop();
}

// Every model and route of the plan behind one registry; the names of what it serves.
// The provider of a loaded local model; local compute is priced by its cores' time.
std::shared_ptr<router::LocalProvider> make_local_provider(const Plan& plan, const LocalEntry& entry, const Loaded& l, int64_t now) {
  const int cores = entry.engine.n_threads > 0 ? entry.engine.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const double per_core_hour = plan.config ? plan.config->local_per_core_hour : 0.0;
  return std::make_shared<router::LocalProvider>(router::LocalModel{
      .id = entry.name, .created = now, .model = l.model.get(), .tokenizer = &*l.tokenizer, .chat_template = &*l.chat_template,
      .chat_template_source = l.chat_template_source, .engine = l.engine.get(), .usd_per_second = cores * per_core_hour / 3600.0,
      .adapters = l.fixed, .catalog = l.catalog});
}

// Loads another version of a registry model (the entry with the version's file and adapters).
using VersionLoader = std::function<core::Result<serve::LoadedVersion>(const LocalEntry&, const serve::ModelVersion&)>;

core::Result<std::string> make_registry(const Plan& plan, const std::vector<std::unique_ptr<Loaded>>& locals,
                                        serve::ModelRegistry& models, const VersionLoader& load_version,
                                        const std::function<void(const std::string&)>& shadow_log) {
  const auto now = static_cast<int64_t>(std::time(nullptr));
  std::map<std::string, std::shared_ptr<router::Provider>> by_name;
  std::vector<std::string> names;
  for (size_t i = 0; i < plan.locals.size(); ++i) {
    const LocalEntry& entry = plan.locals[i];
    const Loaded& l = *locals[i];
    std::shared_ptr<router::Provider> p = make_local_provider(plan, entry, l, now);
    if (!entry.registry_alias.empty()) {
      serve::VersionedModelOptions options{
          .name = entry.name, .alias = entry.registry_alias,
          .load = [load_version, entry](const serve::ModelVersion& v) { return load_version(entry, v); },
          .log = [](const std::string& line) { fmt::print(stderr, "owl serve: {}\n", line); }};
      // The first version's weights and engine are the server's (locals) until it exits.
      p = std::make_shared<serve::VersionedModel>(std::move(options), plan.versions, entry.version, serve::LoadedVersion{.provider = p});
    }
    by_name[entry.name] = p;
    std::vector<std::string> adapters;
    for (const router::NamedAdapter& a : l.catalog->list()) adapters.push_back(fmt::format("'{}:{}'", entry.name, a.name));
    std::string described = fmt::format("'{}'", entry.name);
    if (!entry.registry_alias.empty()) described += fmt::format(" ({}@{}: {})", entry.name, entry.registry_alias, entry.version.version);
    if (!adapters.empty()) described += fmt::format(" (adapters {})", fmt::join(adapters, ", "));
    names.push_back(described);
  }
  if (plan.config) {
    for (const router::ModelSpec& m : plan.config->models) {
      if (m.local()) continue;
      const char* key = m.api_key_env.empty() ? nullptr : std::getenv(m.api_key_env.c_str());
      if (m.served_by_nodes()) {
        auto pool = std::make_shared<router::NodePool>(m, key == nullptr ? "" : key, now);
        by_name[m.name] = pool;
        names.push_back(m.nodes_dns.empty() ? fmt::format("'{}' ({} nodes)", m.name, m.nodes.size())
                                            : fmt::format("'{}' ({} nodes at {})", m.name, pool->states().size(), m.nodes_dns));
        continue;
      }
      by_name[m.name] = std::make_shared<router::HostedProvider>(m, key == nullptr ? "" : key, now);
      names.push_back(fmt::format("'{}' (hosted)", m.name));
    }
  }
  // /v1/models lists them in the file's order; a request that names none gets the first.
  std::vector<std::string> order;
  if (plan.config) {
    for (const router::ModelSpec& m : plan.config->models) order.push_back(m.name);
  } else {
    order.push_back(plan.locals[0].name);
  }
  for (const std::string& name : order) OWL_TRY(models.add(by_name.at(name)));
  if (!plan.config) return fmt::format("model {}", fmt::join(names, ", "));
  auto member = [&](const std::string& name) {
    return router::RouteMember{.provider = by_name.at(name).get(), .spec = plan.config->find_model(name)};
  };
  std::vector<std::string> routes;
  for (const router::RouteSpec& r : plan.config->routes) {
    router::RouteSetup setup{.spec = r, .detector = plan.detector};
    for (const router::CascadeStep& step : r.cascade) setup.cascade.push_back(member(step.model));
    for (const std::string& f : r.fallback) setup.fallback.push_back(member(f));
    for (const router::RuleSpec& rule : r.rules) setup.rules.push_back(member(rule.model));
    if (r.canary) setup.canary = member(r.canary->model);
    if (!r.shadow.empty()) {
      setup.shadow = member(r.shadow);
      setup.on_shadow = [log = shadow_log](const router::ShadowResult& s) {
        router::Json line = {{"ts", serve::iso_time_now()}, {"event", "shadow"}, {"route", s.route}, {"model", s.model},
                     {"answered_by", s.answered_by}, {"same_text", s.same_text}, {"word_overlap", s.word_overlap},
                     {"latency_ms", s.latency_ms}, {"completion_tokens", s.completion_tokens}};
        if (!s.error.empty()) line["error"] = s.error;
        log(serve::dump_json(line));
      };
    }
    auto route = router::RouteProvider::make(std::move(setup), now);
    if (!route) return core::make_error("{}:{}: {}", plan.config->file, r.line, route.message());
    OWL_TRY(models.add(std::shared_ptr<router::Provider>(std::move(*route))));
    routes.push_back(fmt::format("'{}'", r.name));
  }
  return fmt::format("models {}; routes {}", fmt::join(names, ", "), routes.empty() ? "none" : fmt::format("{}", fmt::join(routes, ", ")));
}

int run_serve(ServeArgs& args) {
  // Never destroyed: its thread waits for signals as long as the process lives.
  StopSignals& signals = *new StopSignals;
  Plan plan;  // outlives the server, whose routes point into its config
  if (auto s = check_args(args, plan); !s) return fmt::print(stderr, "owl serve: {}\n", s.message()), 1;
  if (args.server.log_content && !plan.detector) {  // the built-in detectors redact what the log keeps
    auto detector = router::SensitiveDetector::make({});
    if (!detector) return fmt::print(stderr, "owl serve: {}\n", detector.message()), 1;
    plan.detector = std::make_shared<const router::SensitiveDetector>(std::move(*detector));
  }
  if (plan.detector) args.server.redact = [d = plan.detector](std::string_view text) { return d->redact(text); };
  if (!args.log_file.path.empty()) {
    args.log_file.max_bytes = static_cast<uint64_t>(args.log_max_mb * 1024 * 1024);
    auto log = serve::RequestLog::open(args.log_file);
    if (!log) return fmt::print(stderr, "owl serve: {}\n", log.message()), 1;
    args.server.log = [log = std::shared_ptr<serve::RequestLog>(std::move(*log))](const std::string& line) { log->write(line); };
  }
  if (!args.ledger.empty()) {
    auto ledger = open_ledger(args.ledger);
    if (!ledger) return fmt::print(stderr, "owl serve: --ledger: {}\n", ledger.message()), 1;
    args.server.ledger = std::move(*ledger);
  }
  if (args.auth) {
    auto keys = open_key_store(args.state, args.redis);
    if (!keys) return fmt::print(stderr, "owl serve: --auth: {}\n", keys.message()), 1;
    auto listed = keys->store->list();
    if (!listed) return fmt::print(stderr, "owl serve: --auth: {}\n", listed.message()), 1;
    size_t in_force = 0;
    for (const serve::KeyInfo& k : *listed) in_force += k.revoked_unix == 0;
    fmt::print(stderr, "owl serve: API keys required ({} in force in {}{})\n", in_force, keys->where,
               in_force == 0 ? "; create one with: owl keys create --name NAME" : "");
    args.server.guard = std::make_shared<serve::KeyGuard>(keys->store, keys->counters);
  } else if ((!args.state.empty() || !args.redis.empty()) && !plan.versions) {
    return fmt::print(stderr, "owl serve: a store of keys (--state, --redis, or the config's state:) is read with --auth "
                              "(state: {{auth: true}} in the config) or for registry models; neither is asked for\n"), 1;
  }
  serve::Metrics metrics;
  args.server.host = args.host;
  args.server.port = args.port;
  serve::Server server(args.server, metrics);
  auto port = server.bind();
  if (!port) return fmt::print(stderr, "owl serve: {}\n", port.message()), 1;
  server.start();
  fmt::print(stderr, "owl serve: listening on http://{}:{}/ (loading {})\n", args.host, *port,
             args.config.empty() ? args.model : args.config);

  const auto load_start = engine::Clock::now();
  std::vector<std::unique_ptr<Loaded>> locals;
  auto adapter_ids = std::make_shared<router::AdapterIds>(0);
  for (const LocalEntry& entry : plan.locals) {
    locals.push_back(std::make_unique<Loaded>());
    if (auto s = load(args, entry, adapter_ids, metrics, *locals.back()); !s) {
      fmt::print(stderr, "owl serve: {}{}\n", plan.config ? fmt::format("model '{}': ", entry.name) : "", s.message());
      server.stop();
      return 1;
    }
    context_size(*locals.back()->model, entry.engine.n_ctx, "owl serve");  // warns beyond the training length
    const Loaded& l = *locals.back();
    const std::string packed = l.model->packed ? fmt::format(", {} repacked for the kernels in {:.2f} s",
                                                             cli::human_bytes(l.model->packed->size()), l.model->pack_seconds)
                                               : "";
    fmt::print(stderr, "owl serve: {}{} of {} in memory{}, warmed up in {:.2f} s\n", plan.config ? fmt::format("model '{}': ", entry.name) : "",
               cli::human_bytes(l.model->file.resident_bytes()), cli::human_bytes(l.model->file.file_size()), packed,
               l.engine->warm_up_seconds());
  }
  metrics.set_model_load_seconds(std::chrono::duration<double>(engine::Clock::now() - load_start).count());
  auto models = std::make_shared<serve::ModelRegistry>();
  // Another version of a registry model, loaded and warmed up beside the one serving.
  const VersionLoader load_version = [&args, &plan, &metrics, adapter_ids](const LocalEntry& base,
                                                                           const serve::ModelVersion& v) -> core::Result<serve::LoadedVersion> {
    LocalEntry entry = base;
    entry.path = v.file;
    entry.version = v;
    entry.fixed.clear();
    for (const auto& [file, scale] : v.lora) entry.fixed.push_back({.path = file, .scale = static_cast<float>(scale), .where = "registry"});
    auto loaded = std::make_shared<Loaded>();
    OWL_TRY(load(args, entry, adapter_ids, metrics, *loaded));
    return serve::LoadedVersion{.provider = make_local_provider(plan, entry, *loaded, static_cast<int64_t>(std::time(nullptr))),
                                .owner = loaded};
  };
  // Shadow answers' lines go where the request log goes.
  const std::function<void(const std::string&)> shadow_log =
      args.server.log ? args.server.log : [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  auto served = make_registry(plan, locals, *models, load_version, shadow_log);
  if (!served) {
    fmt::print(stderr, "owl serve: {}\n", served.message());
    server.stop();
    return 1;
  }
  server.set_models(models);
  signals.ready();
  if (plan.config) {
    fmt::print(stderr, "owl serve: ready: {}; chat page and API at http://{}:{}/\n", *served, args.host, *port);
  } else {
    fmt::print(stderr, "owl serve: ready: {}, {} sequences of {} tokens; chat page and API at http://{}:{}/\n", *served,
               args.engine.n_parallel, locals[0]->engine->n_ctx(), args.host, *port);
  }

  const int signal = signals.wait();
  fmt::print(stderr, "owl serve: {} received: draining\n", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  drain(server, *models, locals, args.drain_timeout_s);
  for (auto& l : locals) l->engine.reset();
  fmt::print(stderr, "owl serve: stopped\n");
  return 0;
}

}  // namespace

Command register_serve(CLI::App& root) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* app = root.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API, with a chat page at /");
  app->add_option("-m,--model", args->model, "GGUF model file");
  app->add_option("--config", args->config, "Models (local and hosted) and routes, in YAML (docs/router.md); instead of -m");
  app->add_option("--ledger", args->ledger, "SQLite file, or redis://HOST:PORT shared by gateways, where every answer is recorded with its cost (see owl usage)");
  app->add_flag("--auth", args->auth, "Require an API key (Authorization: Bearer KEY) from owl keys on every endpoint but /health");
  app->add_option("--state", args->state, "State file of the API keys and their spend (default: $OWL_STATE, else ~/.owl/state.db)");
  app->add_option("--redis", args->redis, "With --auth, keys, limits and budgets in Redis, shared by gateways: redis://HOST:PORT[/DB]");
  app->add_flag("--public-metrics", args->server.public_metrics, "With --auth, let /metrics answer without a key");
  app->add_option("--alias", args->alias, "Model id the API reports and accepts (default: the file name without .gguf)");
  app->add_option("--host", args->host, "Address to listen on")->capture_default_str();
  app->add_option("--port", args->port, "Port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  app->add_option("--parallel", args->engine.n_parallel, "Sequences computed together at most")->capture_default_str();
  add_ctx_option(app, args->engine.n_ctx, "Context per sequence (0: the model's, at most 4096)");
  add_threads_option(app, args->engine.n_threads);
  app->add_option("-b,--batch", args->engine.step_tokens,
                  "Tokens one step computes at most, prompt chunks included (0: 128, or --parallel if more)")
      ->capture_default_str();
  app->add_option("--queue", args->engine.max_queue, "Requests waiting beyond --parallel before 429")->capture_default_str();
  app->add_option("-n,--n-predict", args->server.default_max_tokens,
                  "max_tokens of requests that set none (-1: until the context is full)")->capture_default_str();
  app->add_option("--chat-template", args->chat_template_file, "Jinja chat template file to use instead of the model's");
  app->add_option("--chat-format", args->chat_format, "Built-in chat format for models without a template")->capture_default_str();
  app->add_option("--max-body", args->server.max_body_bytes, "Largest request body in bytes (413 beyond)")->capture_default_str();
  app->add_option("--max-connections", args->server.max_connections,
                  "Connections served at once; more wait to be accepted")->capture_default_str();
  app->add_option("--cors", args->server.cors_origin, "Origin browsers may call the API from (\"*\": any)");
  app->add_option("--lora", args->lora,
                  "LoRA adapter served as the model id MODEL:NAME, as NAME=FILE or FILE (named by its stem); repeatable")
      ->type_name("NAME=FILE");
  app->add_option("--lora-scaled", args->lora_scaled, "A LoRA adapter as --lora, run at SCALE; repeatable")
      ->type_name("NAME=FILE SCALE");
  app->add_flag("--lora-runtime", args->server.adapter_loading,
                "Let POST /lora-adapters load and unload adapters while serving (callers can make the server read files)");
  app->add_flag("--accept-any-model", args->server.accept_any_model,
                "Serve requests for any model name with this model (for clients that hard-code one)");
  app->add_flag("--deterministic", args->engine.batch_invariant,
                "A seeded request gives the same text whatever runs beside it (slower generation; docs/serve.md)");
  app->add_flag("--log-content", args->server.log_content,
                "Put prompts and outputs in the request log, sensitive data redacted by the router's detectors");
  app->add_option("--log-file", args->log_file.path, "Write the request log (JSON lines) to this file, created 0600, instead of stderr");
  app->add_option("--log-max-mb", args->log_max_mb, "Rotate the --log-file at this size (0: never)")
      ->capture_default_str()->check(CLI::Range(0.0, 1e7));
  app->add_option("--log-keep-days", args->log_file.keep_days, "Remove rotated log files older than this (0: keep all)")
      ->capture_default_str()->check(CLI::Range(0, 36500));
  app->add_option("--drain-timeout", args->drain_timeout_s, "Seconds running requests may finish after SIGTERM")->capture_default_str();
  add_gpu_layers_option(app, args->n_gpu_layers);
  return {app, [args, app] {
            note_gpu_layers(app, "owl serve");
            return run_serve(*args);
          }};
}

}  // namespace owl::cli
