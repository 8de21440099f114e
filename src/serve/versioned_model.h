// A model served from the version registry (`registry: ALIAS` in the config): the provider of the
// version NAME@ALIAS names. The alias is read every second; when it moves, the new version loads
// and warms up beside the old one while the old one serves, then new requests go to the new one.
// Requests running on the old one finish there; it is dropped once its engine is idle and a
// minute has passed (handlers that looked up the model just before the switch are done with its
// details by then). A version that fails to load leaves the old one serving and says why in the
// log; it is tried again only when the alias moves again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "router/provider.h"
#include "serve/model_versions.h"

namespace owl::serve {

using router::ApiError;

// A loaded version: its provider, and what must live as long as it does (weights, engine).
struct LoadedVersion {
  std::shared_ptr<router::Provider> provider;
  std::shared_ptr<void> owner;
};

struct VersionedModelOptions {
  std::string name;     // the model's name in the registry (and the id it is served as)
  std::string alias;    // prod, canary, ...
  std::chrono::milliseconds poll{1000};
  std::chrono::milliseconds retire_after{60000};
  std::function<core::Result<LoadedVersion>(const ModelVersion&)> load;  // loads and warms up
  std::function<void(const std::string&)> log;                             // one line per event
};

// Threading: every method may be called from any thread; the watcher runs on its own thread.
class VersionedModel : public router::Provider {
 public:
  VersionedModel(VersionedModelOptions options, std::shared_ptr<ModelVersions> versions, ModelVersion first, LoadedVersion loaded);
  ~VersionedModel() override;
  VersionedModel(const VersionedModel&) = delete;
  VersionedModel& operator=(const VersionedModel&) = delete;

  const router::ModelInfo& info() const override { return current()->loaded.provider->info(); }
  std::variant<router::Submission, ApiError> submit(const router::CompletionRequest& request,
                                                    std::shared_ptr<engine::EventSink> sink) override;
  std::variant<router::Embeddings, ApiError> embed(const router::EmbeddingRequest& request) override;
  void cancel_running() override;
  engine::Gauges gauges() const override;
  router::AdapterCatalog* adapter_catalog() const override { return current()->loaded.provider->adapter_catalog(); }

  // The version serving new requests.
  std::string serving() const;
  // Versions still loaded (the serving one and those finishing their requests).
  size_t loaded() const;
  // Reads the alias now and switches if it moved (the watcher does it every poll).
  void check();

 private:
  struct Version {
    ModelVersion version;
    LoadedVersion loaded;
    std::chrono::steady_clock::time_point replaced{};  // when it stopped taking new requests
  };
  std::shared_ptr<Version> current() const;
  void retire_idle();

  VersionedModelOptions options_;
  std::shared_ptr<ModelVersions> versions_;
  mutable std::mutex mutex_;
  std::shared_ptr<Version> current_;               // guarded by mutex_
  std::vector<std::shared_ptr<Version>> retired_;  // guarded by mutex_: replaced, not yet dropped
  std::string failed_;                             // the version that failed to load; guarded by check_mutex_
  std::mutex check_mutex_;                         // one check at a time
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                          // guarded by wake_mutex_
  std::thread watcher_;
};

}  // namespace owl::serve
