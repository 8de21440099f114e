#include "router/adapter_catalog.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include <fmt/format.h>

namespace owl::router {

AdapterCatalog::AdapterCatalog(const model::Model& model, std::shared_ptr<AdapterIds> ids)
    : model_(model), ids_(std::move(ids)) {}

core::Status AdapterCatalog::check_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (!ok) return core::make_error("'{}' is not an adapter name (1 to 64 letters, digits, - _ .)", name);
  if (name == "latest") return core::make_error("'latest' is not an adapter name: Ollama's clients mean the base model by it");
  return {};
}

core::Result<NamedAdapter> AdapterCatalog::load(const std::string& name, const std::string& path, float scale) {
  OWL_TRY(check_name(name));
  auto loaded = model::load_lora(path, model_);
  if (!loaded) {
    const std::string& why = loaded.message();
    return why.find(path) != std::string::npos ? loaded.error() : core::make_error("{}: {}", path, why);
  }
  NamedAdapter entry{.id = ids_->fetch_add(1), .name = name, .path = path, .scale = scale,
                     .created = static_cast<int64_t>(std::time(nullptr))};
  // Prefix reuse keys KV by the adapters' names and addresses; the id keeps an adapter loaded
  // later at a freed one's address from matching KV computed under the freed one.
  (*loaded)->name = fmt::format("{}#{}", name, entry.id);
  entry.adapter = std::move(*loaded);
  std::lock_guard<std::mutex> lock(mutex_);
  auto same = std::find_if(entries_.begin(), entries_.end(), [&](const NamedAdapter& e) { return e.name == name; });
  if (same != entries_.end()) {
    entries_.erase(same);
  } else if (entries_.size() >= kMaxServedAdapters) {
    return core::make_error("adapter '{}': this model serves {} adapters already, the most it may; unload one first", name,
                            entries_.size());
  }
  entries_.push_back(entry);
  return entry;
}

std::optional<NamedAdapter> AdapterCatalog::unload(std::string_view name) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const NamedAdapter& e) { return e.name == name; });
  if (it == entries_.end()) return std::nullopt;
  NamedAdapter out = std::move(*it);
  entries_.erase(it);
  return out;
}

std::optional<NamedAdapter> AdapterCatalog::find(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const NamedAdapter& e : entries_) {
    if (e.name == name) return e;
  }
  return std::nullopt;
}

bool AdapterCatalog::has_id(int64_t id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::any_of(entries_.begin(), entries_.end(), [&](const NamedAdapter& e) { return e.id == id; });
}

bool AdapterCatalog::set_scale(int64_t id, float scale) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (NamedAdapter& e : entries_) {
    if (e.id != id) continue;
    e.scale = scale;
    return true;
  }
  return false;
}

std::vector<NamedAdapter> AdapterCatalog::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_;
}

std::variant<std::shared_ptr<const model::AdapterSet>, ApiError> AdapterCatalog::resolve(
    std::string_view base_id, std::string_view name, std::span<const LoraChoice> choices) const {
  std::vector<std::pair<std::shared_ptr<const model::Adapter>, float>> picked;  // in the order asked
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto by = [&](auto match) { return std::find_if(entries_.begin(), entries_.end(), match); };
    if (!name.empty()) {
      auto it = by([&](const NamedAdapter& e) { return e.name == name; });
      if (it == entries_.end()) {
        return ApiError{.status = 404, .message = fmt::format("the model '{}:{}' does not exist: '{}' serves no adapter "
                                                              "named '{}' (GET /lora-adapters lists them)", base_id, name,
                                                              base_id, name),
                        .param = "model", .code = "model_not_found"};
      }
      picked.emplace_back(it->adapter, it->scale);
      ids.push_back(it->id);
    }
    for (const LoraChoice& c : choices) {
      auto it = by([&](const NamedAdapter& e) { return e.id == c.id; });
      if (it == entries_.end()) {
        return ApiError{.message = fmt::format("'lora' names adapter id {}, which the model '{}' does not serve "
                                               "(GET /lora-adapters lists them)", c.id, base_id),
                        .param = "lora"};
      }
      auto at = std::find(ids.begin(), ids.end(), c.id);
      if (at != ids.end()) {
        picked[static_cast<size_t>(at - ids.begin())].second = c.scale;
      } else {
        picked.emplace_back(it->adapter, c.scale);
        ids.push_back(c.id);
      }
    }
  }
  auto set = std::make_shared<model::AdapterSet>();
  for (auto& [adapter, scale] : picked) {
    if (scale != 0.0f) set->adapters.emplace_back(std::move(adapter), scale);
  }
  if (set->adapters.empty()) return std::shared_ptr<const model::AdapterSet>();
  return std::shared_ptr<const model::AdapterSet>(std::move(set));
}

}  // namespace owl::router
