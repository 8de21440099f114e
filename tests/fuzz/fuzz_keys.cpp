// libFuzzer target for what the key store reads from outside: a presented API key (from the
// Authorization header), a Redis URL (command line, config), and a key's limits as stored (JSON).
// Nothing may crash; limits that parse must write back to the same limits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "serve/keys.h"
#include "serve/redis_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string id = owl::serve::keys::key_id(input);
  if (!id.empty() && id.size() != owl::serve::keys::kIdHex) std::abort();
  const std::string salt(owl::serve::keys::kSaltHex, 'a'), hash(64, 'b');
  if (owl::serve::keys::key_matches(input, &salt, &hash)) std::abort();  // no input hashes to "bbb..."
  (void)owl::serve::parse_redis_url(input);
  if (auto limits = owl::serve::keys::limits_from_json(input); limits.ok()) {
    auto again = owl::serve::keys::limits_from_json(owl::serve::keys::limits_to_json(*limits));
    if (!again.ok() || again->rpm != limits->rpm || again->models != limits->models || again->budget_usd != limits->budget_usd) {
      std::fprintf(stderr, "limits changed on the way through JSON\n");
      std::abort();
    }
  }
  return 0;
}
