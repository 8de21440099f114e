#include "serve/model_versions.h"

#include <sqlite3.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>

#include <fmt/format.h>

#include "core/sha256.h"
#include "core/sqlite.h"
#include "serve/redis_store.h"

namespace owl::serve {
namespace {

using Json = nlohmann::json;

class SqliteDocuments final : public DocumentStore {
 public:
  SqliteDocuments(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteDocuments() override { sqlite3_close(db_); }

  core::Result<std::optional<std::string>> get(const std::string& name) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return get_locked(name);
  }

  core::Result<bool> compare_and_set(const std::string& name, const std::optional<std::string>& expected,
                                     const std::string& value) override {
    std::lock_guard<std::mutex> lock(mutex_);
    // IMMEDIATE: the write lock is taken before the read, so another process cannot slip between.
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return error();
    auto now = get_locked(name);
    if (!now || *now != expected) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      if (!now) return now.error();
      return false;
    }
    core::Statement st;
    sqlite3_prepare_v2(db_, "INSERT INTO model_versions (name, doc) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                       -1, &st.s, nullptr);
    sqlite3_bind_text(st.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 2, value.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE || sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      auto e = error();
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return e;
    }
    return true;
  }

  core::Result<std::vector<std::string>> names() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    core::Statement st;
    sqlite3_prepare_v2(db_, "SELECT name FROM model_versions ORDER BY name", -1, &st.s, nullptr);
    std::vector<std::string> out;
    int rc;
    while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) out.push_back(core::column_text(st.s, 0));
    if (rc != SQLITE_DONE) return error();
    return out;
  }

 private:
  core::Result<std::optional<std::string>> get_locked(const std::string& name) const {
    core::Statement st;
    sqlite3_prepare_v2(db_, "SELECT doc FROM model_versions WHERE name = ?", -1, &st.s, nullptr);
    sqlite3_bind_text(st.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    const int rc = sqlite3_step(st.s);
    if (rc == SQLITE_ROW) return std::optional<std::string>(core::column_text(st.s, 0));
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    return error();
  }
  core::Error error() const { return core::make_error("state {}: {}", path_, sqlite3_errmsg(db_)); }

  mutable std::mutex mutex_;
  sqlite3* db_;  // guarded by mutex_
  std::string path_;
};

// KEYS: owl:registry:<name>, owl:registry-names; ARGV: expected ("" with ARGV[3] = "absent"), value, absent flag.
constexpr const char* kCompareAndSet = R"(
local now = redis.call('GET', KEYS[1])
if ARGV[3] == 'absent' then
  if now then return 0 end
elseif now ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
return 1)";

class RedisDocuments final : public DocumentStore {
 public:
  explicit RedisDocuments(std::shared_ptr<RedisClient> redis) : redis_(std::move(redis)) {}
  core::Result<std::optional<std::string>> get(const std::string& name) const override {
    auto r = redis_->command({"GET", "owl:registry:" + name});
    if (!r) return r.error();
    if (r->kind == RedisValue::Kind::kNil) return std::optional<std::string>();
    return std::optional<std::string>(r->text);
  }
  core::Result<bool> compare_and_set(const std::string& name, const std::optional<std::string>& expected,
                                     const std::string& value) override {
    auto r = redis_->command({"EVAL", kCompareAndSet, "2", "owl:registry:" + name, "owl:registry-names", expected.value_or(""), value,
                              expected ? "present" : "absent", name});
    if (!r) return r.error();
    return r->integer == 1;
  }
  core::Result<std::vector<std::string>> names() const override {
    auto r = redis_->command({"SMEMBERS", "owl:registry-names"});
    if (!r) return r.error();
    std::vector<std::string> out;
    for (const RedisValue& v : r->items) out.push_back(v.text);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::shared_ptr<RedisClient> redis_;
};

Json to_json(const ModelRecord& r) {
  Json versions = Json::array(), aliases = Json::object(), history = Json::array();
  for (const ModelVersion& v : r.versions) {
    Json lora = Json::array();
    for (const auto& [file, scale] : v.lora) lora.push_back({{"file", file}, {"scale", scale}});
    versions.push_back({{"version", v.version}, {"file", v.file}, {"sha256", v.sha256}, {"size_bytes", v.size_bytes},
                        {"lora", lora}, {"added_unix", v.added_unix}});
  }
  for (const auto& [alias, version] : r.aliases) aliases[alias] = version;
  for (const VersionEvent& e : r.history) {
    history.push_back({{"unix_s", e.unix_s}, {"action", e.action}, {"alias", e.alias}, {"version", e.version},
                       {"previous", e.previous}, {"why", e.why}, {"report", e.report}});
  }
  return {{"versions", versions}, {"aliases", aliases}, {"history", history}};
}

core::Result<ModelRecord> from_json(const std::string& name, const std::string& text) {
  try {
    const Json j = Json::parse(text);
    ModelRecord r{.name = name};
    for (const Json& v : j.at("versions")) {
      ModelVersion mv{.version = v.at("version"), .file = v.at("file"), .sha256 = v.at("sha256"), .size_bytes = v.at("size_bytes"),
                      .added_unix = v.at("added_unix")};
      for (const Json& l : v.at("lora")) mv.lora.emplace_back(l.at("file"), l.at("scale"));
      r.versions.push_back(std::move(mv));
    }
    for (const auto& [alias, version] : j.at("aliases").items()) r.aliases.emplace_back(alias, version.get<std::string>());
    for (const Json& e : j.at("history")) {
      r.history.push_back(VersionEvent{.unix_s = e.at("unix_s"), .action = e.at("action"), .alias = e.at("alias"),
                                       .version = e.at("version"), .previous = e.at("previous"), .why = e.at("why"),
                                       .report = e.at("report")});
    }
    return r;
  } catch (const Json::exception& e) {
    return core::make_error("the versions of '{}' are not readable: {}", name, e.what());
  }
}

}  // namespace

core::Result<std::unique_ptr<DocumentStore>> open_sqlite_documents(const std::string& path) {
  auto db = core::open_private_sqlite(path, "CREATE TABLE IF NOT EXISTS model_versions (name TEXT PRIMARY KEY, doc TEXT NOT NULL);", "state",
                                      "an owl state file");
  if (!db) return db.error();
  return std::unique_ptr<DocumentStore>(new SqliteDocuments(*db, path));
}

std::unique_ptr<DocumentStore> redis_documents(std::shared_ptr<RedisClient> redis) {
  return std::make_unique<RedisDocuments>(std::move(redis));
}

const ModelVersion* ModelRecord::find(const std::string& version) const {
  for (const ModelVersion& v : versions) {
    if (v.version == version) return &v;
  }
  return nullptr;
}

const ModelVersion* ModelRecord::aliased(const std::string& alias) const {
  for (const auto& [a, version] : aliases) {
    if (a == alias) return find(version);
  }
  return nullptr;
}

core::Result<std::optional<ModelRecord>> ModelVersions::get(const std::string& name) const {
  auto doc = store_->get(name);
  if (!doc) return doc.error();
  if (!*doc) return std::optional<ModelRecord>();
  auto r = from_json(name, **doc);
  if (!r) return r.error();
  return std::optional<ModelRecord>(std::move(*r));
}

core::Result<std::vector<ModelRecord>> ModelVersions::list() const {
  auto names = store_->names();
  if (!names) return names.error();
  std::vector<ModelRecord> out;
  for (const std::string& n : *names) {
    auto r = get(n);
    if (!r) return r.error();
    if (*r) out.push_back(std::move(**r));
  }
  return out;
}

core::Status ModelVersions::update(const std::string& name, const std::function<core::Status(ModelRecord&)>& change) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto doc = store_->get(name);
    if (!doc) return doc.error();
    ModelRecord r{.name = name};
    if (*doc) {
      auto parsed = from_json(name, **doc);
      if (!parsed) return parsed.error();
      r = std::move(*parsed);
    }
    OWL_TRY(change(r));
    // Model outputs in eval reports may hold bytes that are not UTF-8.
    auto written = store_->compare_and_set(name, *doc, to_json(r).dump(-1, ' ', false, Json::error_handler_t::replace));
    if (!written) return written.error();
    if (*written) return {};
  }
  return core::make_error("the versions of '{}' kept changing under this write; try again", name);
}

core::Result<ModelVersion> ModelVersions::add(const std::string& name, const std::string& file,
                                              std::vector<std::pair<std::string, double>> lora, const std::string& version,
                                              int64_t now_unix) {
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(file, ec).lexically_normal().string();
  if (!std::filesystem::is_regular_file(absolute, ec)) return core::make_error("{}: no such file", file);
  for (auto& [adapter, scale] : lora) {
    if (!std::filesystem::is_regular_file(adapter, ec)) return core::make_error("--lora {}: no such file", adapter);
    adapter = std::filesystem::absolute(adapter, ec).lexically_normal().string();
  }
  {
    std::FILE* f = std::fopen(absolute.c_str(), "rb");
    char magic[4] = {};
    const bool gguf = f != nullptr && std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
    if (f != nullptr) std::fclose(f);
    if (!gguf) return core::make_error("{}: not a GGUF file (it does not start with GGUF)", file);
  }
  auto sha = core::sha256_file(absolute);
  if (!sha) return sha.error();
  ModelVersion added{.version = version, .file = absolute, .sha256 = *sha, .size_bytes = std::filesystem::file_size(absolute, ec),
                     .lora = std::move(lora), .added_unix = now_unix};
  OWL_TRY(update(name, [&](ModelRecord& r) -> core::Status {
    if (added.version.empty()) added.version = fmt::format("v{}", r.versions.size() + 1);
    while (version.empty() && r.find(added.version) != nullptr) added.version += "'";
    if (r.find(added.version) != nullptr) return core::make_error("'{}' already has a version {}", name, added.version);
    r.versions.push_back(added);
    return {};
  }));
  return added;
}

core::Status ModelVersions::record(const std::string& name, VersionEvent event) {
  return update(name, [&](ModelRecord& r) -> core::Status {
    if (r.find(event.version) == nullptr) return core::make_error("'{}' has no version {}", name, event.version);
    if (event.action != "refuse") {
      auto it = std::find_if(r.aliases.begin(), r.aliases.end(), [&](const auto& a) { return a.first == event.alias; });
      if (it == r.aliases.end()) r.aliases.emplace_back(event.alias, event.version);
      else it->second = event.version;
    }
    r.history.push_back(event);
    return {};
  });
}

core::Result<VersionEvent> ModelVersions::rollback(const std::string& name, const std::string& alias, int64_t now_unix) {
  VersionEvent event{.unix_s = now_unix, .action = "rollback", .alias = alias};
  OWL_TRY(update(name, [&](ModelRecord& r) -> core::Status {
    const ModelVersion* now = r.aliased(alias);
    if (now == nullptr) return core::make_error("'{}@{}' names no version", name, alias);
    // The version the alias named before the current one was promoted to it (a rollback of a
    // rollback does not undo it: it goes further back).
    std::string before;
    for (auto it = r.history.rbegin(); it != r.history.rend(); ++it) {
      if (it->alias == alias && it->action == "promote" && it->version == now->version) {
        before = it->previous;
        break;
      }
    }
    if (before.empty()) return core::make_error("'{}@{}' ({}) has no earlier version to go back to", name, alias, now->version);
    event.previous = now->version;
    event.version = before;
    event.why = fmt::format("{}@{} rolled back from {} to {}", name, alias, now->version, before);
    for (auto& [a, v] : r.aliases) {
      if (a == alias) v = before;
    }
    r.history.push_back(event);
    return {};
  }));
  return event;
}

}  // namespace owl::serve
