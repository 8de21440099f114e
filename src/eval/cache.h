// What owl eval remembers between runs (SQLite, WAL): every computed output under a key that
// holds everything that decides it (the model file's hash, quantization, adapter, prompt,
// sampling, seed), so a re-run computes only what changed and an interrupted run resumes; and
// the SHA-256 of model files, remembered by path, size and modification time.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "core/sha256.h"

struct sqlite3;

namespace owl::eval {

using core::sha256_file;
using core::sha256_hex;

// Threading: every method may be called from any thread.
class ResultCache {
 public:
  // Creates the file (and its folder) when missing.
  static core::Result<std::unique_ptr<ResultCache>> open(const std::string& path);
  ~ResultCache();
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  std::optional<nlohmann::ordered_json> get(const std::string& key);
  core::Status put(const std::string& key, const nlohmann::ordered_json& value);
  // The file's SHA-256, computed once per (path, size, mtime).
  core::Result<std::string> file_hash(const std::string& path);

 private:
  explicit ResultCache(sqlite3* db) : db_(db) {}
  std::mutex mutex_;
  sqlite3* db_;
};

}  // namespace owl::eval
