// Jinja2 templates as Hugging Face renders chat templates: jinja2 with trim_blocks=True,
// lstrip_blocks=True, the loopcontrols extension (break/continue), `tojson` without ASCII
// escaping, and the globals raise_exception() and strftime_now().
//
//   auto t = Template::parse(source);            // syntax errors name line and column
//   auto text = t->render(context_json, {});     // runtime errors name line and column
//
// Rendering is bounded (output size, work, recursion), so a hostile template returns an error
// instead of hanging or crashing. A Template is immutable; render() may run on many threads.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace owl::tmpl {

using core::Result;

struct RenderLimits {
  size_t max_output_bytes = size_t{16} << 20;   // the rendered text and any one string
  uint64_t max_steps = 20'000'000;               // statements run, loop iterations, calls
  uint64_t max_string_work = uint64_t{1} << 30;  // bytes of strings built, all together
  int max_call_depth = 100;                      // nested macro calls
  int max_eval_depth = 1500;                     // nested evaluation of nodes
};

struct RenderOptions {
  RenderLimits limits;
  // The local time strftime_now() formats; the system clock when empty.
  std::function<std::tm()> clock;
};

struct ParsedTemplate;

class Template {
 public:
  static Result<Template> parse(std::string_view source);

  // `context` must be a JSON object; its members become template variables.
  Result<std::string> render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const ParsedTemplate> parsed_;
};

// Error message of a raise_exception() call is exactly the template's message; every other
// error reads "template:LINE:COLUMN: message".
std::string format_error(std::string_view message, int line, int column);

}  // namespace owl::tmpl
