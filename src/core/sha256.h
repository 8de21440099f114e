// SHA-256 in lower-case hex (OpenSSL's), for cache keys, file identities and key hashes.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace owl::core {

std::string sha256_hex(std::string_view bytes);
// Of `a` followed by `b`, without joining them first (a salt and a secret).
std::string sha256_hex(std::string_view a, std::string_view b);
// Of a file's bytes, read in 1 MiB pieces; errors name the file.
Result<std::string> sha256_file(const std::string& path);
// Bytes as lower-case hex.
std::string hex(const unsigned char* bytes, size_t n);

}  // namespace owl::core
