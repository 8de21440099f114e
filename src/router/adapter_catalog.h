// The LoRA adapters a local model serves by name: loaded at start (`owl serve --lora NAME=FILE`)
// or while it serves (POST /lora-adapters), listed as the model ids BASE:NAME, and picked per
// request by that id or by llama.cpp's `lora` field (ids as GET /lora-adapters gives them). A
// request resolves its adapters once, when it is submitted, into an AdapterSet of shared_ptrs:
// its sequences keep the adapters they started with whatever is unloaded or replaced later.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.h"
#include "model/adapter.h"
#include "router/request.h"

namespace owl::router {

// Where adapter ids come from: one counter for every catalog of a server, so that an id names
// one adapter of one model, and is never given again after an unload.
using AdapterIds = std::atomic<int64_t>;

struct NamedAdapter {
  int64_t id = 0;        // llama-server's adapter id
  std::string name;      // the part after "BASE:" in the model id
  std::string path;      // the file it was read from
  float scale = 1.0f;    // the user's scale when a request names it by model id
  int64_t created = 0;   // unix seconds, when it was loaded
  std::shared_ptr<const model::Adapter> adapter;
};

inline constexpr size_t kMaxServedAdapters = 256;  // per model

// Threading: every method may be called from any thread; a mutex guards the entries, and a
// file is read outside it.
class AdapterCatalog {
 public:
  // `model` must outlive the catalog.
  AdapterCatalog(const model::Model& model, std::shared_ptr<AdapterIds> ids);

  // A name an adapter may have: 1 to 64 letters, digits, '-', '_' or '.'; not "latest", which
  // Ollama's clients add to the base model's id.
  static core::Status check_name(std::string_view name);

  // Reads `path` (model::load_lora) and serves it as `name`, in place of an adapter of that name
  // (requests that started with the old one keep it). The error names the file and the reason.
  core::Result<NamedAdapter> load(const std::string& name, const std::string& path, float scale);
  // Stops serving `name`; what was unloaded, or nothing when no adapter has that name.
  std::optional<NamedAdapter> unload(std::string_view name);
  std::optional<NamedAdapter> find(std::string_view name) const;
  bool has_id(int64_t id) const;
  // Sets the scale adapter `id` gets when a request names it by model id; false for an id of
  // another catalog or none.
  bool set_scale(int64_t id, float scale);
  std::vector<NamedAdapter> list() const;  // by id

  // The adapters of one request: `name` at its scale ("" for none), and each choice by id at
  // its scale (a choice of the named adapter's id sets its scale). Adapters at scale 0 are left
  // out, so that such a request is the base model's, prefix cache included; null when none is
  // left. Errors: 404 for an unknown name (naming the model id `base_id`:name), 400 for an
  // unknown id.
  std::variant<std::shared_ptr<const model::AdapterSet>, ApiError> resolve(std::string_view base_id, std::string_view name,
                                                                           std::span<const LoraChoice> choices) const;

 private:
  const model::Model& model_;
  std::shared_ptr<AdapterIds> ids_;
  mutable std::mutex mutex_;
  std::vector<NamedAdapter> entries_;  // guarded by mutex_; by id
};

}  // namespace owl::router
