// Where `owl keys` and `owl serve --auth` keep API keys and spend: Redis with --redis URL (shared
// by many gateways), else the state file: --state FILE, else $OWL_STATE, else ~/.owl/state.db (its
// folder created 0700).
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <memory>

#include "core/result.h"
#include "serve/keys.h"
#include "serve/model_versions.h"
#include "serve/redis_store.h"

namespace owl::cli {

inline core::Result<std::string> state_file(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("OWL_STATE"); env != nullptr && *env != '\0') return std::string(env);
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return core::make_error("no --state FILE given, and neither OWL_STATE nor HOME is set");
  const std::string dir = std::string(home) + "/.owl";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return core::make_error("{}: {}", dir, std::strerror(errno));
  return dir + "/state.db";
}

struct KeyStoreChoice {
  std::shared_ptr<serve::KeyStore> store;
  std::shared_ptr<serve::Counters> counters;  // in Redis beside its keys; else this process's
  std::string where;                          // "redis HOST:PORT" or the state file
};

// Opens the store and reads it once, so that an unreachable Redis or a file that is not owl's
// fails now, naming it.
inline core::Result<KeyStoreChoice> open_key_store(const std::string& state, const std::string& redis_url) {
  KeyStoreChoice c;
  if (!redis_url.empty()) {
    if (!state.empty()) return core::make_error("--state and --redis name two stores; give one");
    auto address = serve::parse_redis_url(redis_url);
    if (!address) return core::make_error("--redis {}", address.message());
    auto client = std::make_shared<serve::RedisClient>(*address);
    c.store = std::make_shared<serve::RedisKeyStore>(client);
    c.counters = std::make_shared<serve::RedisCounters>(client);
    c.where = client->where();
  } else {
    auto path = state_file(state);
    if (!path) return path.error();
    auto store = serve::SqliteKeyStore::open(*path);
    if (!store) return store.error();
    c.store = std::shared_ptr<serve::KeyStore>(std::move(*store));
    c.counters = std::make_shared<serve::MemoryCounters>();
    c.where = *path;
  }
  if (auto keys = c.store->list(); !keys) return keys.error();
  return c;
}

// The cost ledger: a SQLite file, or Redis shared by gateways for a redis:// URL.
inline core::Result<std::shared_ptr<router::Ledger>> open_ledger(const std::string& where) {
  if (where.starts_with("redis://")) {
    auto address = serve::parse_redis_url(where);
    if (!address) return core::make_error("--ledger {}", address.message());
    return std::shared_ptr<router::Ledger>(std::make_shared<serve::RedisLedger>(std::make_shared<serve::RedisClient>(*address)));
  }
  auto ledger = router::Ledger::open(where);
  if (!ledger) return ledger.error();
  return std::shared_ptr<router::Ledger>(std::move(*ledger));
}

// The model versions in the same store as the keys.
inline core::Result<std::shared_ptr<serve::ModelVersions>> open_model_versions(const std::string& state, const std::string& redis_url) {
  if (!redis_url.empty()) {
    if (!state.empty()) return core::make_error("--state and --redis name two stores; give one");
    auto address = serve::parse_redis_url(redis_url);
    if (!address) return core::make_error("--redis {}", address.message());
    return std::make_shared<serve::ModelVersions>(serve::redis_documents(std::make_shared<serve::RedisClient>(*address)));
  }
  auto path = state_file(state);
  if (!path) return path.error();
  auto documents = serve::open_sqlite_documents(*path);
  if (!documents) return documents.error();
  return std::make_shared<serve::ModelVersions>(std::shared_ptr<serve::DocumentStore>(std::move(*documents)));
}

}  // namespace owl::cli
