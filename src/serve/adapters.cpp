// The LoRA adapters of the served models, as llama-server's /lora-adapters shows them, loaded
// and unloaded while the server runs:
//   GET    /lora-adapters                          [{"id", "path", "scale", "name", "model", "base"}]
//   POST   /lora-adapters  {"name", "path", "scale"?, "model"?}     loads (or replaces) one
//   POST   /lora-adapters  {"name", "unload": true, "model"?}       unloads one
//   DELETE /lora-adapters/{name}[?model=BASE]                       unloads one
//   POST   /lora-adapters  [{"id", "scale"}, ...]  (llama-server's) sets the scale a request through
//                                                  the model id BASE:NAME runs the adapter at
// `model` is the base model's id, by default the first model that serves adapters. Loading and
// unloading need `--lora-runtime` (ServerOptions::adapter_loading).
#include <cmath>

#include <fmt/format.h>

#include "serve/server_impl.h"

namespace owl::serve {
namespace {

void reply_json(httplib::Response& res, const Json& body) {
  res.status = 200;
  res.set_content(dump_json(body), "application/json");
}

std::string adapter_model_id(const router::ModelInfo& base, std::string_view name) { return fmt::format("{}:{}", base.id, name); }

Json adapter_json(const router::ModelInfo& base, const router::NamedAdapter& a) {
  return {{"id", a.id}, {"path", a.path}, {"scale", a.scale}, {"name", a.name}, {"model", adapter_model_id(base, a.name)},
          {"base", base.id}};
}

ApiError bad(std::string param, std::string message) {
  return ApiError{.message = std::move(message), .param = std::move(param)};
}

// The provider whose adapters `model` names ("" for the first that serves adapters).
std::variant<router::Provider*, ApiError> adapter_provider(const ModelRegistry& models, const std::string& model) {
  if (model.empty()) {
    for (const auto& p : models.all()) {
      if (p->adapter_catalog() != nullptr) return p.get();
    }
    return bad("model", "no model of this server serves adapters");
  }
  router::Provider* p = models.find(model);
  if (p == nullptr) return model_not_found(models, model);
  if (p->adapter_catalog() == nullptr) {
    return bad("model", fmt::format("the model '{}' serves no adapters (it is hosted, or a route)", model));
  }
  return p;
}

// A string field of the body ("" when absent), or the error.
std::variant<std::string, ApiError> string_field(const Json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::string();
  if (!it->is_string()) return bad(key, fmt::format("'{}' must be a string, got {}", key, it->type_name()));
  return it->get<std::string>();
}

std::optional<ApiError> loading_refused(const Server::Impl& s) {
  if (s.options.adapter_loading) return std::nullopt;
  return ApiError{.status = 403, .message = "loading and unloading adapters while serving is off; start owl serve with --lora-runtime",
                  .code = "adapter_loading_disabled"};
}

void unload(Server::Impl& s, const ModelRegistry& models, const std::string& model, const std::string& name,
            httplib::Response& res) {
  if (auto e = loading_refused(s)) return reply_error(res, *e);
  auto found = adapter_provider(models, model);
  if (auto* e = std::get_if<ApiError>(&found)) return reply_error(res, *e);
  const router::Provider& p = *std::get<router::Provider*>(found);
  auto gone = p.adapter_catalog()->unload(name);
  if (!gone) return reply_error(res, model_not_found(models, adapter_model_id(p.info(), name)));
  s.log({{"event", "adapter_unloaded"}, {"model", adapter_model_id(p.info(), name)}, {"id", gone->id}});
  reply_json(res, {{"unloaded", adapter_json(p.info(), *gone)}});
}

void load(Server::Impl& s, const ModelRegistry& models, const Json& body, httplib::Response& res) {
  if (auto e = loading_refused(s)) return reply_error(res, *e);
  for (const auto& [key, value] : body.items()) {
    if (key != "name" && key != "path" && key != "scale" && key != "model" && key != "unload") {
      return reply_error(res, bad(key, fmt::format("unknown field '{}'; loading takes name, path, scale and model", key)));
    }
  }
  auto name = string_field(body, "name"), path = string_field(body, "path"), model = string_field(body, "model");
  for (auto* f : {&name, &path, &model}) {
    if (auto* e = std::get_if<ApiError>(f)) return reply_error(res, *e);
  }
  const std::string& file = std::get<std::string>(path);
  if (file.empty()) return reply_error(res, bad("path", "'path' (the adapter's GGUF file on the server) is required"));
  if (std::get<std::string>(name).empty()) return reply_error(res, bad("name", "'name' is required: the model id will be BASE:name"));
  float scale = 1.0f;
  if (auto it = body.find("scale"); it != body.end() && !it->is_null()) {
    if (!it->is_number() || !(std::abs(it->get<double>()) <= router::kMaxAdapterScale)) {
      return reply_error(res, bad("scale", fmt::format("'scale' must be a number in [-{}, {}], got {}", router::kMaxAdapterScale,
                                                       router::kMaxAdapterScale, it->dump())));
    }
    scale = it->get<float>();
  }
  auto found = adapter_provider(models, std::get<std::string>(model));
  if (auto* e = std::get_if<ApiError>(&found)) return reply_error(res, *e);
  const router::Provider& p = *std::get<router::Provider*>(found);
  const std::string id = adapter_model_id(p.info(), std::get<std::string>(name));
  if (models.find(id) != nullptr) return reply_error(res, bad("name", fmt::format("'{}' is already the id of a model", id)));
  auto loaded = p.adapter_catalog()->load(std::get<std::string>(name), file, scale);
  if (!loaded) {
    s.log({{"event", "adapter_load_failed"}, {"model", id}, {"path", file}, {"error", loaded.message()}});
    return reply_error(res, bad("path", fmt::format("cannot load the adapter '{}': {}", id, loaded.message())));
  }
  s.log({{"event", "adapter_loaded"}, {"model", id}, {"id", loaded->id}, {"path", file}, {"scale", scale}});
  reply_json(res, adapter_json(p.info(), *loaded));
}

// llama-server's form: [{"id", "scale"}, ...]; every entry is checked before any is applied.
void set_scales(const ModelRegistry& models, const Json& body, httplib::Response& res) {
  std::vector<std::pair<router::AdapterCatalog*, router::LoraChoice>> changes;
  for (size_t i = 0; i < body.size(); ++i) {
    const Json& e = body[i];
    const std::string at = fmt::format("[{}]", i);
    if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || !e.contains("scale") || !e["scale"].is_number() ||
        !(std::abs(e["scale"].get<double>()) <= router::kMaxAdapterScale)) {
      return reply_error(res, bad(at, fmt::format("'{}' must be {{\"id\": an adapter id, \"scale\": a number in [-{}, {}]}}, got {}",
                                                  at, router::kMaxAdapterScale, router::kMaxAdapterScale, e.dump())));
    }
    const router::LoraChoice c{.id = e["id"].get<int64_t>(), .scale = e["scale"].get<float>()};
    router::AdapterCatalog* owner = nullptr;
    for (const auto& p : models.all()) {
      if (p->adapter_catalog() != nullptr && p->adapter_catalog()->has_id(c.id)) owner = p->adapter_catalog();
    }
    if (owner == nullptr) return reply_error(res, bad(at, fmt::format("no adapter has the id {} (GET /lora-adapters lists them)", c.id)));
    changes.emplace_back(owner, c);
  }
  for (const auto& [catalog, c] : changes) catalog->set_scale(c.id, c.scale);
  reply_json(res, {{"success", true}});
}

}  // namespace

void add_adapter_routes(Server::Impl& s) {
  httplib::Server& h = s.http;
  h.Get("/lora-adapters", guarded(s, [&s](const Principal&, const httplib::Request&, httplib::Response& res) {
    const ModelRegistry* models = ready_models(s, res);
    if (!models) return;
    Json out = Json::array();
    for (const auto& p : models->all()) {
      if (const router::AdapterCatalog* catalog = p->adapter_catalog()) {
        for (const router::NamedAdapter& a : catalog->list()) out.push_back(adapter_json(p->info(), a));
      }
    }
    reply_json(res, out);
  }));
  h.Post("/lora-adapters", guarded(s, [&s](const Principal&, const httplib::Request& req, httplib::Response& res) {
    const ModelRegistry* models = ready_models(s, res);
    if (!models) return;
    Json json;
    try {
      json = Json::parse(req.body);
    } catch (const Json::exception& e) {
      return reply_error(res, ApiError{.message = fmt::format("the body is not valid JSON: {}", e.what())});
    }
    if (json.is_array()) return set_scales(*models, json, res);
    if (!json.is_object()) return reply_error(res, ApiError{.message = fmt::format("the body must be a JSON object or array, got {}", json.type_name())});
    auto unload_flag = json.find("unload");
    if (unload_flag != json.end() && !unload_flag->is_null() && !unload_flag->is_boolean()) {
      return reply_error(res, bad("unload", "'unload' must be a boolean"));
    }
    if (unload_flag == json.end() || unload_flag->is_null() || !unload_flag->get<bool>()) return load(s, *models, json, res);
    auto name = string_field(json, "name"), model = string_field(json, "model");
    for (auto* f : {&name, &model}) {
      if (auto* e = std::get_if<ApiError>(f)) return reply_error(res, *e);
    }
    if (std::get<std::string>(name).empty()) return reply_error(res, bad("name", "'name' of the adapter to unload is required"));
    unload(s, *models, std::get<std::string>(model), std::get<std::string>(name), res);
  }));
  h.Delete(R"(/lora-adapters/(.+))", guarded(s, [&s](const Principal&, const httplib::Request& req, httplib::Response& res) {
    const ModelRegistry* models = ready_models(s, res);
    if (!models) return;
    unload(s, *models, req.get_param_value("model"), req.matches[1], res);
  }));
}

}  // namespace owl::serve
