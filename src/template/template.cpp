#include "template/template.h"

#include <new>

#include <fmt/format.h>

#include "template/ast.h"
#include "template/interpreter.h"
#include "template/lexer.h"

namespace owl::tmpl {

struct ParsedTemplate {
  ParsedTemplate(std::string src, Body b) : source(std::move(src)), body(std::move(b)), map(source) {}
  std::string source;
  Body body;
  SourceMap map;
};

std::string format_error(std::string_view message, int line, int column) {
  if (line <= 0) return fmt::format("template: {}", message);
  return fmt::format("template:{}:{}: {}", line, column, message);
}

Result<Template> Template::parse(std::string_view source) {
  ParseResult parsed = parse_template(source);
  if (!parsed.error.empty()) {
    int line = 0, column = 0;
    SourceMap(parsed.source).locate(parsed.error_offset, line, column);
    return core::Error{format_error(parsed.error, line, column)};
  }
  Template t;
  t.parsed_ = std::make_shared<const ParsedTemplate>(std::move(parsed.source), std::move(parsed.body));
  return t;
}

Result<std::string> Template::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  if (!parsed_) return core::Error{"template: render() of an empty Template"};
  if (!context.is_object()) return core::Error{"template: the context must be a JSON object"};
  try {
    auto globals = std::make_shared<Frame>();
    install_globals(*globals);
    auto top = std::make_shared<Frame>();
    top->parent = globals;
    for (const auto& [key, value] : context.items()) top->vars[key] = Value::from_json(value);
    Interpreter interpreter(parsed_->map, options);
    return interpreter.render(parsed_->body, std::move(top));
  } catch (const RenderError& e) {
    if (e.raised) return core::Error{e.message};
    return core::Error{format_error(e.message, e.line, e.column)};
  } catch (const std::bad_alloc&) {
    return core::Error{"template: out of memory while rendering"};
  } catch (const std::exception& e) {
    return core::Error{format_error(e.what(), 0, 0)};
  }
}

}  // namespace owl::tmpl
