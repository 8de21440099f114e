// libFuzzer target for the router's untrusted inputs: a YAML config (bytes up to the first NUL)
// and request text (the rest). Parsing must never crash or hang; a config that parses must give
// detectors that scan and redact any bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "router/config.h"
#include "router/sensitive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  std::string_view yaml = input.substr(0, nul);
  std::string_view text = nul == std::string_view::npos ? input : input.substr(nul + 1);
  owl::router::SensitiveOptions options;
  if (auto config = owl::router::parse_router_config(yaml, "fuzz.yaml"); config.ok()) {
    // owl route calibrate --write: an edited config parses again, or the edit is an error.
    for (const auto& route : config->routes) {
      if (route.cascade.size() < 2) continue;
      auto edited = owl::router::set_escalation_threshold(yaml, "fuzz.yaml", route.name, 0, "mean_logprob_below", -0.75);
      if (edited.ok() && !owl::router::parse_router_config(*edited, "fuzz.yaml").ok()) {
        std::fprintf(stderr, "the edited config no longer parses\n");
        std::abort();
      }
    }
    options.builtin = config->detectors;
    for (const auto& c : config->custom_detectors) options.custom.push_back({.name = c.name, .regex = c.regex, .words = c.words});
  }
  auto detector = owl::router::SensitiveDetector::make(options);
  if (!detector.ok()) return 0;
  const auto found = detector->find(text);
  size_t end = 0;
  for (const auto& d : found) {
    if (d.offset < end || d.offset + d.length > text.size()) {
      std::fprintf(stderr, "detection %s at %zu+%zu overlaps or leaves the text\n", d.detector.c_str(), d.offset, d.length);
      std::abort();
    }
    end = d.offset + d.length;
  }
  (void)detector->redact(text);
  return 0;
}
