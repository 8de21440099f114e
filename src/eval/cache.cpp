#include "eval/cache.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

namespace owl::eval {
namespace {

// Runs one statement with text parameters; returns the first column of the first row, if any.
core::Result<std::optional<std::string>> exec(sqlite3* db, const char* sql, std::initializer_list<std::string_view> params) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) return core::make_error("eval cache: {}", sqlite3_errmsg(db));
  int i = 1;
  for (std::string_view p : params) sqlite3_bind_text(stmt, i++, p.data(), static_cast<int>(p.size()), SQLITE_TRANSIENT);
  std::optional<std::string> out;
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    out = std::string(text ? text : "", static_cast<size_t>(sqlite3_column_bytes(stmt, 0)));
    rc = SQLITE_DONE;
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return core::make_error("eval cache: {}", sqlite3_errmsg(db));
  return out;
}

}  // namespace

core::Result<std::unique_ptr<ResultCache>> ResultCache::open(const std::string& path) {
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return core::make_error("{}: cannot create the folder: {}", dir.string(), ec.message());
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return core::make_error("{}: {}", path, message);
  }
  sqlite3_busy_timeout(db, 5000);
  auto cache = std::unique_ptr<ResultCache>(new ResultCache(db));
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                          "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                          "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT PRIMARY KEY, stamp TEXT NOT NULL, sha256 TEXT NOT NULL)"}) {
    auto r = exec(db, sql, {});
    if (!r) return core::make_error("{}: {}", path, r.message());
  }
  return cache;
}

ResultCache::~ResultCache() { sqlite3_close(db_); }

std::optional<nlohmann::ordered_json> ResultCache::get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto r = exec(db_, "SELECT value FROM results WHERE key = ?1", {key});
  if (!r || !*r) return std::nullopt;
  auto j = nlohmann::ordered_json::parse(**r, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

core::Status ResultCache::put(const std::string& key, const nlohmann::ordered_json& value) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto r = exec(db_, "INSERT OR REPLACE INTO results (key, value) VALUES (?1, ?2)", {key, value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)});
  if (!r) return r.error();
  return {};
}

core::Result<std::string> ResultCache::file_hash(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return core::make_error("{}: {}", path, std::strerror(errno));
  const std::string canonical = std::filesystem::weakly_canonical(path).string();
  const std::string stamp = fmt::format("{}:{}.{}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto r = exec(db_, "SELECT sha256 FROM file_hashes WHERE path = ?1 AND stamp = ?2", {canonical, stamp});
    if (r && *r) return **r;
  }
  auto sha = sha256_file(path);
  if (!sha) return sha.error();
  std::lock_guard<std::mutex> lock(mutex_);
  auto r = exec(db_, "INSERT OR REPLACE INTO file_hashes (path, stamp, sha256) VALUES (?1, ?2, ?3)", {canonical, stamp, *sha});
  if (!r) return r.error();
  return *sha;
}

}  // namespace owl::eval
