#include "core/sqlite.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace owl::core {

Result<sqlite3*> open_private_sqlite(const std::string& path, std::string_view schema, std::string_view what, std::string_view kind) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return make_error("{} {}: {}", what, path, std::strerror(errno));
    if (fd >= 0) ::close(fd);
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return make_error("{} {}: {}", what, path, message);
  }
  sqlite3_busy_timeout(db, 5000);
  char* error = nullptr;
  const std::string setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + std::string(schema);
  if (sqlite3_exec(db, setup.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    sqlite3_close(db);
    return make_error("{} {}: {} (is it {}?)", what, path, message, kind);
  }
  return db;
}

Statement::~Statement() { sqlite3_finalize(s); }

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* t = sqlite3_column_text(s, i);
  return t != nullptr ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(s, i))) : "";
}

}  // namespace owl::core
