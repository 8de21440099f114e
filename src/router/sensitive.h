// Sensitive-data detectors: the router sends a request in which one fires only to self-hosted
// models (fail closed), and logs prompts with the matches redacted.
//
// Each detector is one or more PCRE2 patterns (JIT-compiled where available), some followed by a
// checksum or shape check in C++ (Luhn for cards, ISO 13616 mod-97 and the country's length for
// IBANs). Built-ins match bytes (ASCII patterns; any bytes, invalid UTF-8 included, are fine);
// custom detectors are compiled as UTF-8 with Unicode properties and match invalid UTF-8 input
// without failing (PCRE2_MATCH_INVALID_UTF: invalid sequences simply never match).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace owl::router {

// A user's own detector from the config: a named PCRE2 regex, or a named list of words (matched
// case-insensitively as whole words; a run of spaces inside a word matches any run of white
// space). Both may be given: either then fires the detector. Names use letters, digits, '_',
// '-' and '.'.
struct CustomDetector {
  std::string name;
  std::string regex;
  std::vector<std::string> words;
};

struct SensitiveOptions {
  // Which built-ins are on: "email", "phone", "card", "iban", "us_ssn", "secret".
  std::vector<std::string> builtin = {"email", "phone", "card", "iban", "us_ssn", "secret"};
  std::vector<CustomDetector> custom;
};

// A byte range [offset, offset + length) of the text.
struct Detection {
  std::string detector;
  size_t offset = 0;
  size_t length = 0;
};

// Immutable after make(); copies share the compiled patterns. find(), fired() and redact() may be
// called from any number of threads at once (each call makes its own match data).
class SensitiveDetector {
 public:
  // Errors name the thing and the value: an unknown built-in (listing the known ones), a custom
  // regex that does not compile (its name, the PCRE2 message and offset), a custom detector with
  // neither a regex nor words, an empty word, a bad or duplicate name.
  static core::Result<SensitiveDetector> make(const SensitiveOptions& options);

  // Every match, by offset, non-overlapping: matches that overlap (of one detector or several)
  // merge into one detection named for the one that starts first (the longest, then the first
  // detector, at equal starts). A pattern that hits PCRE2's match, depth, heap or JIT stack limit
  // counts as a detection from where that search started to the end of the text (fail closed).
  std::vector<Detection> find(std::string_view text) const;

  // The distinct names of the detectors that matched, sorted; also those whose matches find()
  // merged into another detector's.
  std::vector<std::string> fired(std::string_view text) const;

  // The text with each detection of find() replaced by "[REDACTED:<name>]".
  std::string redact(std::string_view text) const;

  // The enabled detectors' names: the built-ins in the options' order, then the custom ones.
  std::vector<std::string> names() const;

 private:
  struct Compiled;
  SensitiveDetector() = default;
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace owl::router
