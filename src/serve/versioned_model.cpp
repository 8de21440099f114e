#include "serve/versioned_model.h"

#include <filesystem>

#include <fmt/format.h>

namespace owl::serve {

VersionedModel::VersionedModel(VersionedModelOptions options, std::shared_ptr<ModelVersions> versions, ModelVersion first,
                               LoadedVersion loaded)
    : options_(std::move(options)), versions_(std::move(versions)) {
  current_ = std::make_shared<Version>(Version{.version = std::move(first), .loaded = std::move(loaded)});
  watcher_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(wake_mutex_);
    while (!wake_.wait_for(lock, options_.poll, [&] { return stopping_; })) {
      lock.unlock();
      check();
      lock.lock();
    }
  });
}

VersionedModel::~VersionedModel() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  watcher_.join();
}

std::shared_ptr<VersionedModel::Version> VersionedModel::current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_;
}

std::variant<router::Submission, ApiError> VersionedModel::submit(const router::CompletionRequest& request,
                                                                  std::shared_ptr<engine::EventSink> sink) {
  return current()->loaded.provider->submit(request, std::move(sink));
}

std::variant<router::Embeddings, ApiError> VersionedModel::embed(const router::EmbeddingRequest& request) {
  return current()->loaded.provider->embed(request);
}

void VersionedModel::cancel_running() {
  std::lock_guard<std::mutex> lock(mutex_);
  current_->loaded.provider->cancel_running();
  for (const auto& v : retired_) v->loaded.provider->cancel_running();
}

engine::Gauges VersionedModel::gauges() const {
  std::lock_guard<std::mutex> lock(mutex_);
  engine::Gauges sum = current_->loaded.provider->gauges();
  for (const auto& v : retired_) {
    const engine::Gauges g = v->loaded.provider->gauges();
    sum.queued += g.queued;
    sum.running += g.running;
    sum.kv_tokens_active += g.kv_tokens_active;
    sum.kv_bytes += g.kv_bytes;
  }
  return sum;
}

std::string VersionedModel::serving() const { return current()->version.version; }

size_t VersionedModel::loaded() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return 1 + retired_.size();
}

void VersionedModel::check() {
  std::lock_guard<std::mutex> check_lock(check_mutex_);
  retire_idle();
  auto record = versions_->get(options_.name);
  if (!record) {
    options_.log(fmt::format("cannot read {}@{}: {}", options_.name, options_.alias, record.message()));
    return;
  }
  const ModelVersion* wanted = *record ? (*record)->aliased(options_.alias) : nullptr;
  if (wanted == nullptr || wanted->version == serving() || wanted->version == failed_) return;
  const ModelVersion next = *wanted;
  options_.log(fmt::format("{}@{} moved to {}: loading {}", options_.name, options_.alias, next.version, next.file));
  const auto start = std::chrono::steady_clock::now();
  core::Result<LoadedVersion> loaded = core::make_error("the file changed since it was added ({} bytes recorded)", next.size_bytes);
  std::error_code ec;
  if (std::filesystem::file_size(next.file, ec) == next.size_bytes) loaded = options_.load(next);
  if (!loaded) {
    failed_ = next.version;
    options_.log(fmt::format("{}@{}: version {} failed to load, {} keeps serving: {}", options_.name, options_.alias, next.version,
                             serving(), loaded.message()));
    return;
  }
  failed_.clear();
  std::string before;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    before = current_->version.version;
    current_->replaced = std::chrono::steady_clock::now();
    retired_.push_back(std::move(current_));
    current_ = std::make_shared<Version>(Version{.version = next, .loaded = std::move(*loaded)});
  }
  options_.log(fmt::format("{}@{}: now serving {} (loaded and warmed up in {:.2f} s; {} finishes its requests)", options_.name,
                           options_.alias, next.version,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), before));
}

void VersionedModel::retire_idle() {
  std::vector<std::shared_ptr<Version>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(retired_, [&](const std::shared_ptr<Version>& v) {
      const engine::Gauges g = v->loaded.provider->gauges();
      const bool idle = g.queued == 0 && g.running == 0 && now - v->replaced >= options_.retire_after;
      if (idle) dropped.push_back(v);
      return idle;
    });
  }
  for (const auto& v : dropped) options_.log(fmt::format("{}: version {} unloaded", options_.name, v->version.version));
  // `dropped` goes out of scope here, outside the lock: unloading may take a while.
}

}  // namespace owl::serve
