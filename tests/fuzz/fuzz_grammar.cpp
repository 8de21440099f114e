// libFuzzer target for grammars: the input is a GBNF grammar or a JSON Schema (bytes up to the
// first NUL) and text to match (the rest). Parsing, conversion and matching must never crash,
// hang or leak; a schema the converter accepts must give a grammar that parses.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "constrain/grammar.h"
#include "constrain/json_schema.h"
#include "constrain/matcher.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  std::string_view source = input.substr(0, nul);
  std::string_view text = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  std::string gbnf(source);
  if (!source.empty() && (source[0] == '{' || source[0] == '[' || source == "true")) {
    auto schema = nlohmann::ordered_json::parse(source, nullptr, false);
    if (schema.is_discarded()) return 0;
    auto converted = owl::constrain::json_schema_to_gbnf(schema);
    if (!converted.ok()) return 0;
    gbnf = std::move(*converted);
    if (!owl::constrain::Grammar::parse(gbnf).ok()) {
      std::fprintf(stderr, "a converted schema does not parse: %s\n", gbnf.c_str());
      std::abort();
    }
  }
  auto grammar = owl::constrain::Grammar::parse(gbnf);
  if (!grammar.ok()) return 0;
  owl::constrain::Matcher m(*grammar);
  for (size_t i = 0; i < text.size() && m.alive(); i += 7) {
    m.feed(text.substr(i, 7));
    (void)m.key();
    (void)m.accepted();
  }
  return 0;
}
