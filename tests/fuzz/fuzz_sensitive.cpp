// libFuzzer target for the sensitive-data detectors. Without a NUL the input is text for the
// built-ins; with one, the bytes before it are a custom detector (a regex on the first line,
// words on the others) and the rest is the text. Nothing may crash or hang, and find() must
// return non-empty, ordered, non-overlapping ranges inside the text, each from a detector that
// fired(), which redact() replaces.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "router/sensitive.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_sensitive: %s\n", what);
    std::abort();
  }
}

owl::router::CustomDetector parse_custom(std::string_view spec) {
  owl::router::CustomDetector custom{.name = "custom"};
  size_t line_end = spec.find('\n');
  custom.regex = std::string(spec.substr(0, line_end));
  while (line_end != std::string_view::npos) {
    const size_t start = line_end + 1;
    line_end = spec.find('\n', start);
    custom.words.emplace_back(spec.substr(start, line_end == std::string_view::npos ? line_end : line_end - start));
  }
  return custom;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const owl::router::SensitiveDetector builtins = owl::router::SensitiveDetector::make({}).value();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  std::string_view text = input;
  const owl::router::SensitiveDetector* detector = &builtins;
  owl::core::Result<owl::router::SensitiveDetector> custom = owl::core::make_error("none");
  if (nul != std::string_view::npos) {
    text = input.substr(nul + 1);
    custom = owl::router::SensitiveDetector::make({.custom = {parse_custom(input.substr(0, nul))}});
    if (!custom.ok()) return 0;
    detector = &*custom;
  }
  const auto found = detector->find(text);
  const auto fired = detector->fired(text);
  std::string rebuilt;
  size_t end = 0;
  for (const auto& d : found) {
    check(d.length > 0, "an empty detection");
    check(d.offset >= end, "detections overlap or are out of order");
    check(d.offset + d.length <= text.size(), "a detection beyond the text");
    check(std::binary_search(fired.begin(), fired.end(), d.detector), "a detection from a detector that did not fire");
    rebuilt.append(text.substr(end, d.offset - end));
    rebuilt += "[REDACTED:" + d.detector + "]";
    end = d.offset + d.length;
  }
  rebuilt.append(text.substr(std::min(end, text.size())));
  check(detector->redact(text) == rebuilt, "redact() differs from find()");
  check(found.empty() == fired.empty(), "find() and fired() disagree on whether anything matched");
  return 0;
}
