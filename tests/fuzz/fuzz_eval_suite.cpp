// libFuzzer target for owl eval's untrusted inputs: a suite (YAML, bytes up to the first NUL) and
// a model's output (the rest). Parsing must never crash or hang; every scorer of a suite that
// parses must score any output (command, judge and choice need a process or a model: skipped).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "eval/scorers.h"
#include "eval/suite.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view yaml = input.substr(0, nul);
  const std::string output(nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1));
  auto suite = owl::eval::parse_suite(yaml, "fuzz.yaml", "");
  owl::eval::parse_json_output(output);
  if (!suite.ok()) return 0;
  for (const owl::eval::Case& c : suite->cases) {
    (void)suite->render_prompt(c);
    for (const owl::eval::ScorerSpec& s : suite->scorers_of(c)) {
      if (s.type == owl::eval::ScorerType::kCommand || s.type == owl::eval::ScorerType::kJudge ||
          s.type == owl::eval::ScorerType::kChoice) {
        continue;
      }
      (void)owl::eval::score_output(s, {.case_fields = c.fields, .output = output, .output_tokens = 3});
    }
  }
  return 0;
}
