// The template lexer: splits a template into text and tag tokens exactly as jinja2's lexer does
// with trim_blocks=True and lstrip_blocks=True (jinja2/lexer.py, `Lexer.tokeniter`):
// - newlines are normalised to "\n" and one trailing newline of the source is dropped;
// - `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`, `-}}`, `-#}` all after it;
// - lstrip_blocks: spaces and tabs between the start of a line and a `{%` or `{#` are removed
//   (not for `{{`, not with `{%+`);
// - trim_blocks: one newline right after `%}` or `#}` is removed (not after `+%}`);
// - `{% raw %}...{% endraw %}` is text; comments vanish.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace owl::tmpl {

enum class TokenType : uint8_t {
  Text,           // template text between tags (value: the text)
  VariableBegin,  // {{
  VariableEnd,    // }}
  BlockBegin,     // {%
  BlockEnd,       // %}
  Name,           // identifier or keyword
  String,         // string literal (value: unescaped)
  Integer,        // value: digits without '_' or prefix handled by the parser
  Float,          // value: the literal without '_'
  Operator,       // value: the operator text
  End,            // end of the template
};

struct Token {
  TokenType type = TokenType::End;
  std::string value;
  uint32_t offset = 0;  // byte offset in the normalised source
};

// Maps byte offsets of the normalised source to 1-based line and column.
class SourceMap {
 public:
  explicit SourceMap(std::string_view source);
  void locate(uint32_t offset, int& line, int& column) const;

 private:
  std::vector<uint32_t> line_starts_;
};

struct LexResult {
  std::string source;  // normalised source the offsets refer to
  std::vector<Token> tokens;
  // On error: message and offset (tokens is then incomplete).
  std::string error;
  uint32_t error_offset = 0;
};

// Tokenises a template; never throws.
LexResult tokenize(std::string_view source);

}  // namespace owl::tmpl
