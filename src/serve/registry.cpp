#include "serve/registry.h"

#include <fmt/format.h>

namespace owl::serve {

ModelRegistry::~ModelRegistry() {
  while (!providers_.empty()) providers_.pop_back();
}

void ModelRegistry::cancel_running() const {
  for (const auto& p : providers_) p->cancel_running();
}

core::Status ModelRegistry::add(std::shared_ptr<router::Provider> provider) {
  const std::string& id = provider->info().id;
  if (id.empty()) return core::make_error("a model needs a name");
  if (find(id) != nullptr) return core::make_error("two models are named '{}'", id);
  providers_.push_back(std::move(provider));
  return {};
}

router::Provider* ModelRegistry::find(std::string_view id) const {
  if (id.empty()) return providers_.empty() ? nullptr : providers_.front().get();
  for (const auto& p : providers_) {
    if (p->info().id == id) return p.get();
  }
  return nullptr;
}

Target ModelRegistry::resolve(std::string_view id) const {
  if (router::Provider* p = find(id)) return Target{.provider = p};
  const size_t colon = id.rfind(':');
  if (colon == std::string_view::npos) return {};
  router::Provider* base = find(id.substr(0, colon));
  if (base == nullptr || base->adapter_catalog() == nullptr) return {};
  const std::string_view name = id.substr(colon + 1);
  if (!base->adapter_catalog()->find(name)) return {};
  return Target{.provider = base, .adapter = std::string(name)};
}

std::string ModelRegistry::ids() const {
  std::string out;
  for (const auto& p : providers_) {
    out += fmt::format("{}'{}'", out.empty() ? "" : ", ", p->info().id);
    if (const router::AdapterCatalog* catalog = p->adapter_catalog()) {
      for (const router::NamedAdapter& a : catalog->list()) out += fmt::format(", '{}:{}'", p->info().id, a.name);
    }
  }
  return out;
}

engine::Gauges ModelRegistry::gauges() const {
  engine::Gauges sum;
  for (const auto& p : providers_) {
    const engine::Gauges g = p->gauges();
    sum.queued += g.queued;
    sum.running += g.running;
    sum.n_slots += g.n_slots;
    sum.kv_tokens_active += g.kv_tokens_active;
    sum.kv_tokens_cached += g.kv_tokens_cached;
    sum.kv_capacity += g.kv_capacity;
    sum.kv_bytes += g.kv_bytes;
  }
  return sum;
}

}  // namespace owl::serve
