// Model versions (`owl models`): each name's versions (a GGUF file, its SHA-256 and size, its LoRA
// adapters), aliases such as prod and canary naming one version each, and the history of every
// promotion and rollback with the eval report that decided it. Kept as one JSON document per
// name in the state store (the SQLite state file, or Redis shared by every node), changed by
// compare-and-set so that two writers never lose each other's change. Servers that serve
// `registry: ALIAS` models read the alias and switch versions when it moves (version_watch.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

struct sqlite3;

namespace owl::serve {

class RedisClient;

// Where the documents live. Threading: every method may be called from any thread.
class DocumentStore {
 public:
  virtual ~DocumentStore() = default;
  virtual core::Result<std::optional<std::string>> get(const std::string& name) const = 0;
  // Writes `value` when the document is still `expected` (nullopt: absent); false otherwise.
  virtual core::Result<bool> compare_and_set(const std::string& name, const std::optional<std::string>& expected,
                                             const std::string& value) = 0;
  virtual core::Result<std::vector<std::string>> names() const = 0;
};

// In the SQLite state file (table model_versions).
core::Result<std::unique_ptr<DocumentStore>> open_sqlite_documents(const std::string& path);
// In Redis (owl:registry:<name>, and the set owl:registry-names).
std::unique_ptr<DocumentStore> redis_documents(std::shared_ptr<RedisClient> redis);

struct ModelVersion {
  std::string version;                 // "v1", "v2", ... unless given
  std::string file;                    // absolute path of the GGUF file
  std::string sha256;                  // of the file when it was added
  uint64_t size_bytes = 0;
  std::vector<std::pair<std::string, double>> lora;  // adapter files and their scales
  int64_t added_unix = 0;
};

struct VersionEvent {
  int64_t unix_s = 0;
  std::string action;                  // "promote", "refuse", "rollback"
  std::string alias;                   // "prod", "canary"
  std::string version;                 // what the alias names after it (the candidate for "refuse")
  std::string previous;                // what it named before ("" for none)
  std::string why;                     // the decision in a sentence
  nlohmann::json report;               // the eval report (report.json's shape), when one decided
};

struct ModelRecord {
  std::string name;
  std::vector<ModelVersion> versions;  // oldest first
  std::vector<std::pair<std::string, std::string>> aliases;  // alias -> version
  std::vector<VersionEvent> history;   // oldest first
  const ModelVersion* find(const std::string& version) const;
  // The version `alias` names, or null.
  const ModelVersion* aliased(const std::string& alias) const;
};

// Reads and changes the records of a DocumentStore.
class ModelVersions {
 public:
  explicit ModelVersions(std::shared_ptr<DocumentStore> store) : store_(std::move(store)) {}
  core::Result<std::optional<ModelRecord>> get(const std::string& name) const;
  core::Result<std::vector<ModelRecord>> list() const;
  // Records a new version of `name` (the file hashed now); `version` "" picks the next vN.
  core::Result<ModelVersion> add(const std::string& name, const std::string& file,
                                 std::vector<std::pair<std::string, double>> lora, const std::string& version, int64_t now_unix);
  // Points `event.alias` at `event.version` (unless the action is "refuse") and appends the event.
  core::Status record(const std::string& name, VersionEvent event);
  // The alias back to the version it named before its last promotion; the event, or an error
  // when there is none to go back to.
  core::Result<VersionEvent> rollback(const std::string& name, const std::string& alias, int64_t now_unix);

 private:
  // Applies `change` to the record of `name` and writes it, again until no other writer raced.
  core::Status update(const std::string& name, const std::function<core::Status(ModelRecord&)>& change);
  std::shared_ptr<DocumentStore> store_;
};

}  // namespace owl::serve
