// libFuzzer target for the template engine: the input is a template (bytes up to the first NUL)
// optionally followed by a JSON messages array. Parsing and rendering must never crash, hang or
// leak; every failure is an error Result. Limits are tightened so each input runs quickly.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string_view>

#include <nlohmann/json.hpp>

#include "template/chat.h"
#include "template/template.h"

namespace {

std::tm fixed_time() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mday = 15;
  tm.tm_hour = 12;
  return tm;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view source = input.substr(0, input.find('\0'));
  auto messages = nlohmann::ordered_json::array(
      {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi é 🦙"}},
       {{"role", "assistant"}, {"content", "Hello"}}, {{"role", "user"}, {"content", "Bye"}}});
  if (source.size() < input.size()) {
    auto parsed = nlohmann::ordered_json::parse(input.substr(source.size() + 1), nullptr, false);
    if (parsed.is_array()) messages = std::move(parsed);
  }
  auto parsed = owl::tmpl::Template::parse(source);
  if (!parsed) return 0;
  owl::tmpl::ChatOptions options;
  options.add_generation_prompt = true;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  options.render.clock = fixed_time;
  options.render.limits.max_output_bytes = 1 << 20;
  options.render.limits.max_steps = 200'000;
  options.render.limits.max_string_work = 16 << 20;
  auto out = owl::tmpl::render_chat(*parsed, messages, options);
  (void)out;
  return 0;
}
