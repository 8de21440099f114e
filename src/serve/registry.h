// The models a server serves, each behind a Provider, by the id clients ask for. Filled before
// the server publishes it and read-only afterwards, so handlers read it without locks; the
// LoRA adapters a provider serves by name (model ids BASE:NAME) change while it serves, behind
// the provider's own catalog (router/adapter_catalog.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "router/adapter_catalog.h"
#include "router/provider.h"

namespace owl::serve {

// What a model id names: a provider, and the adapter of it that the id names ("" for none).
struct Target {
  router::Provider* provider = nullptr;
  std::string adapter;
  explicit operator bool() const { return provider != nullptr; }
};

class ModelRegistry {
 public:
  ModelRegistry() = default;
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;
  // Destroys the providers last added first: a route goes before the models it asks.
  ~ModelRegistry();
  // Errors when the id is empty or already taken.
  core::Status add(std::shared_ptr<router::Provider> provider);
  // The provider serving `id`; the first one added for "" (a request that names no model).
  router::Provider* find(std::string_view id) const;
  // The provider of `id`, or of BASE for an id BASE:NAME where NAME is an adapter it serves
  // now; as find() for "".
  Target resolve(std::string_view id) const;
  const std::vector<std::shared_ptr<router::Provider>>& all() const { return providers_; }
  // Every id, adapters' included, quoted and comma-separated, for error messages.
  std::string ids() const;
  // Cancels what runs without an engine of this process (hosted answers, routes): for shutdown.
  void cancel_running() const;
  // The gauges of every engine, summed.
  engine::Gauges gauges() const;

 private:
  std::vector<std::shared_ptr<router::Provider>> providers_;
};

}  // namespace owl::serve
