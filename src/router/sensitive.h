// Sensitive-data detectors: which requests may only reach self-hosted models, and what the
// request log redacts. Built-ins find e-mail addresses, phone numbers, payment card numbers
// (Luhn-checked), IBANs (mod-97-checked), US social security numbers and secrets (provider API
// keys, private-key blocks, passwords in URLs, JWTs); users add regexes and word lists.
//
// A regex that cannot finish within its match limit on some text counts as a match there: a
// pattern that gives up must not let the text through (fail closed).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace owl::router {

// A user's own detector: a PCRE2 regex, or a list of words matched case-insensitively as whole
// words (either or both).
struct CustomDetector {
  std::string name;
  std::string regex;
  std::vector<std::string> words;
};

struct SensitiveOptions {
  std::vector<std::string> builtin = {"email", "phone", "card", "iban", "us_ssn", "secret"};
  std::vector<CustomDetector> custom;
};

// A match: the detector and the bytes it covers.
struct Detection {
  std::string detector;
  size_t offset = 0;
  size_t length = 0;
};

// Copies share the compiled patterns. Threading: every const method may be called from any
// thread at once.
class SensitiveDetector {
 public:
  // Errors name the detector and the cause: an unknown built-in (with the known ones), a regex
  // that does not compile (PCRE2's message and offset), a custom detector with nothing to
  // match, a name used twice.
  static core::Result<SensitiveDetector> make(const SensitiveOptions& options);

  // Every match, by offset, without overlaps (at one offset the earlier detector of the options
  // wins, then the longer match).
  std::vector<Detection> find(std::string_view text) const;
  // The names of the detectors of find(), sorted, each once.
  std::vector<std::string> fired(std::string_view text) const;
  // The text with each match replaced by "[REDACTED:<name>]".
  std::string redact(std::string_view text) const;

  static const std::vector<std::string>& builtin_names();

 private:
  struct Pattern;
  std::vector<std::shared_ptr<const Pattern>> patterns_;
};

}  // namespace owl::router
