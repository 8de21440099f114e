#include "template/lexer.h"

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "template/strings.h"

namespace owl::tmpl {

namespace {

// jinja2's `\s` for ASCII sources, the only whitespace that matters in templates.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// "\r\n" and "\r" become "\n"; one trailing newline is dropped (keep_trailing_newline=False).
std::string normalise_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding of a string literal body; unknown escapes stay as written.
bool unescape(std::string_view body, std::string& out, std::string& error) {
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t k = 0; k < n; ++k) {
          int h = i + 1 + k < body.size() ? hex_value(body[i + 1 + k]) : -1;
          if (h < 0) {
            error = fmt::format("truncated \\{}{} escape", e, std::string(n, 'X'));
            return false;
          }
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        if (cp > 0x10FFFF) {
          error = "illegal Unicode character";
          return false;
        }
        append_code_point(out, cp);
        i += n;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
            cp = cp * 8 + static_cast<uint32_t>(body[++i] - '0');
          }
          append_code_point(out, cp);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return true;
}

class Lexer {
 public:
  explicit Lexer(LexResult& result) : r_(result), src_(result.source) {}

  void run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size() && r_.error.empty()) {
      size_t tag = find_tag(pos);
      if (tag == std::string_view::npos) {
        push(TokenType::Text, std::string(src_.substr(pos)), pos);
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      std::string_view text = src_.substr(pos, tag - pos);
      text = strip_before(text, sign, kind != '{', line_starting);
      if (!text.empty()) push(TokenType::Text, std::string(text), pos);
      size_t after = tag + 2 + (sign ? 1 : 0);
      if (kind == '%' && raw_begin(tag, after)) {
        pos = raw_body(after, line_starting);
      } else if (kind == '#') {
        pos = comment(tag, after, line_starting);
      } else {
        pos = tag_body(kind, tag, after, line_starting);
      }
    }
    push(TokenType::End, "", static_cast<uint32_t>(src_.size()));
  }

 private:
  void push(TokenType type, std::string value, size_t offset) {
    r_.tokens.push_back(Token{type, std::move(value), static_cast<uint32_t>(offset)});
  }
  void fail(std::string message, size_t offset) {
    if (!r_.error.empty()) return;
    r_.error = std::move(message);
    r_.error_offset = static_cast<uint32_t>(offset);
  }

  size_t find_tag(size_t pos) const {
    for (size_t i = src_.find('{', pos); i != std::string_view::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string_view::npos;
  }

  // Whitespace control before a tag; `block` is true for `{%` and `{#` (lstrip_blocks).
  static std::string_view strip_before(std::string_view text, char sign, bool block, bool line_starting) {
    if (sign == '-') {
      size_t end = text.size();
      while (end > 0 && is_space(text[end - 1])) --end;
      return text.substr(0, end);
    }
    if (sign == '+' || !block) return text;
    size_t line_pos = text.rfind('\n');
    line_pos = line_pos == std::string_view::npos ? 0 : line_pos + 1;
    if (line_pos == 0 && !line_starting) return text;
    if (line_pos == text.size()) return text;
    for (size_t i = line_pos; i < text.size(); ++i) {
      if (!is_space(text[i])) return text;
    }
    return text.substr(0, line_pos);
  }

  size_t skip_space(size_t pos) const {
    while (pos < src_.size() && is_space(src_[pos])) ++pos;
    return pos;
  }

  // Matches a block end at `pos` (`+%}`, `-%}\s*`, `%}\n?`, or the `#}`/`}}` forms); returns the
  // position after it or npos.
  size_t match_end(size_t pos, char kind) const {
    char close = kind == '{' ? '}' : kind;
    auto at = [&](size_t p, char a, char b) {
      return p + 1 < src_.size() && src_[p] == a && src_[p + 1] == b;
    };
    if (pos < src_.size() && src_[pos] == '-' && at(pos + 1, close, '}')) return skip_space(pos + 3);
    if (kind != '{' && pos < src_.size() && src_[pos] == '+' && at(pos + 1, close, '}')) return pos + 3;
    if (at(pos, close, '}')) {
      size_t end = pos + 2;
      if (kind != '{' && end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
      return end;
    }
    return std::string_view::npos;
  }

  bool starts_word(size_t pos, std::string_view word) const {
    if (src_.substr(pos, word.size()) != word) return false;
    size_t end = pos + word.size();
    return end >= src_.size() || !is_name_char(src_[end]);
  }

  // `{% raw %}` (jinja2 does not apply trim_blocks to its end).
  bool raw_begin(size_t tag, size_t after) {
    size_t p = skip_space(after);
    if (!starts_word(p, "raw")) return false;
    p = skip_space(p + 3);
    if (p + 2 < src_.size() && src_[p] == '-' && src_[p + 1] == '%' && src_[p + 2] == '}') {
      raw_end_ = skip_space(p + 3);
    } else if (p + 1 < src_.size() && src_[p] == '%' && src_[p + 1] == '}') {
      raw_end_ = p + 2;
    } else {
      return false;
    }
    (void)tag;
    return true;
  }

  size_t raw_body(size_t, bool& line_starting) {
    size_t pos = raw_end_;
    line_starting = pos > 0 && src_[pos - 1] == '\n';
    for (size_t i = src_.find("{%", pos); i != std::string_view::npos; i = src_.find("{%", i + 1)) {
      char sign = i + 2 < src_.size() ? src_[i + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      size_t p = skip_space(i + 2 + (sign ? 1 : 0));
      if (!starts_word(p, "endraw")) continue;
      size_t end = match_end(skip_space(p + 6), '%');
      if (end == std::string_view::npos) continue;
      std::string_view text = strip_before(src_.substr(pos, i - pos), sign, true, line_starting);
      if (!text.empty()) push(TokenType::Text, std::string(text), pos);
      line_starting = src_[end - 1] == '\n';
      return end;
    }
    fail("Missing end of raw directive", pos);
    return src_.size();
  }

  size_t comment(size_t tag, size_t after, bool& line_starting) {
    for (size_t i = after; i < src_.size(); ++i) {
      size_t end = match_end(i, '#');
      if (end != std::string_view::npos) {
        line_starting = src_[end - 1] == '\n';
        return end;
      }
    }
    fail("Missing end of comment tag", tag);
    return src_.size();
  }

  // Tokens inside `{{ }}` or `{% %}` up to the end tag; ends only where brackets balance.
  size_t tag_body(char kind, size_t tag, size_t pos, bool& line_starting) {
    push(kind == '{' ? TokenType::VariableBegin : TokenType::BlockBegin, "", tag);
    std::vector<char> balance;
    while (true) {
      pos = skip_space(pos);
      if (pos >= src_.size()) {
        fail(kind == '{' ? "unexpected end of template, expected end of print statement"
                         : "unexpected end of template, expected end of statement",
             tag);
        return src_.size();
      }
      if (balance.empty()) {
        size_t end = match_end(pos, kind);
        if (end != std::string_view::npos) {
          push(kind == '{' ? TokenType::VariableEnd : TokenType::BlockEnd, "", pos);
          line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      size_t next = expression_token(pos, balance);
      if (next == std::string_view::npos) return src_.size();
      pos = next;
    }
  }

  size_t expression_token(size_t pos, std::vector<char>& balance) {
    char c = src_[pos];
    if (is_digit(c)) return number(pos);
    if (is_name_start(c)) {
      size_t end = pos;
      while (end < src_.size() && is_name_char(src_[end])) ++end;
      push(TokenType::Name, std::string(src_.substr(pos, end - pos)), pos);
      return end;
    }
    if (c == '\'' || c == '"') return string(pos);
    static constexpr std::array<std::string_view, 25> kOperators = {
        "//", "**", "==", "!=", ">=", "<=", "+", "-", "*", "/", "%", "~", "[", "]", "(",
        ")",  "{",  "}",  ">",  "<",  "=",  ".", ":", "|", ","};
    for (std::string_view op : kOperators) {
      if (src_.substr(pos, op.size()) != op) continue;
      if (op == "(" || op == "[" || op == "{") balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      if (op == ")" || op == "]" || op == "}") {
        if (balance.empty()) {
          fail(fmt::format("unexpected '{}'", op), pos);
          return std::string_view::npos;
        }
        if (balance.back() != op[0]) {
          fail(fmt::format("unexpected '{}', expected '{}'", op, balance.back()), pos);
          return std::string_view::npos;
        }
        balance.pop_back();
      }
      push(TokenType::Operator, std::string(op), pos);
      return pos + op.size();
    }
    if (c == ';') {
      push(TokenType::Operator, ";", pos);
      return pos + 1;
    }
    fail(fmt::format("unexpected char '{}'", c), pos);
    return std::string_view::npos;
  }

  // Digits with single '_' separators; returns the end (== start when none).
  size_t digits(size_t pos, bool (*ok)(char)) const {
    size_t end = pos;
    while (end < src_.size()) {
      if (ok(src_[end])) {
        ++end;
      } else if (src_[end] == '_' && end > pos && end + 1 < src_.size() && ok(src_[end + 1])) {
        ++end;
      } else {
        break;
      }
    }
    return end;
  }

  size_t number(size_t pos) {
    auto strip = [](std::string_view s) {
      std::string out;
      for (char ch : s) {
        if (ch != '_') out += ch;
      }
      return out;
    };
    // Float first, as jinja2 tries float_re before integer_re; not right after a '.'.
    if (pos == 0 || src_[pos - 1] != '.') {
      size_t int_end = digits(pos, is_digit);
      size_t end = int_end;
      bool is_float = false;
      if (end + 1 < src_.size() && src_[end] == '.' && is_digit(src_[end + 1])) {
        end = digits(end + 1, is_digit);
        is_float = true;
      }
      if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
        size_t e = end + 1;
        if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
        size_t exp_end = e < src_.size() && is_digit(src_[e]) ? digits(e, is_digit) : e;
        if (exp_end > e) {
          end = exp_end;
          is_float = true;
        }
      }
      if (is_float) {
        push(TokenType::Float, strip(src_.substr(pos, end - pos)), pos);
        return end;
      }
    }
    size_t end = pos;
    if (src_[pos] == '0' && pos + 1 < src_.size() && std::strchr("xXoObB", src_[pos + 1]) &&
        src_[pos + 1] != '\0') {
      char base = static_cast<char>(src_[pos + 1] | 0x20);
      auto ok = base == 'x' ? +[](char ch) { return hex_value(ch) >= 0; }
                : base == 'o' ? +[](char ch) { return ch >= '0' && ch <= '7'; }
                              : +[](char ch) { return ch == '0' || ch == '1'; };
      size_t p = pos + 2;
      if (p < src_.size() && src_[p] == '_') ++p;
      end = digits(p, ok);
      if (end == p) end = pos + 1;  // just "0"
    } else if (src_[pos] == '0') {
      end = digits(pos, +[](char ch) { return ch == '0'; });
    } else {
      end = digits(pos, is_digit);
    }
    push(TokenType::Integer, strip(src_.substr(pos, end - pos)), pos);
    return end;
  }

  size_t string(size_t pos) {
    char quote = src_[pos];
    size_t i = pos + 1;
    while (i < src_.size() && src_[i] != quote) {
      i += src_[i] == '\\' ? 2 : 1;
    }
    if (i >= src_.size()) {
      fail("unexpected char '" + std::string(1, quote) + "'", pos);
      return std::string_view::npos;
    }
    std::string value, error;
    if (!unescape(src_.substr(pos + 1, i - pos - 1), value, error)) {
      fail(error, pos);
      return std::string_view::npos;
    }
    push(TokenType::String, std::move(value), pos);
    return i + 1;
  }

  LexResult& r_;
  std::string_view src_;
  size_t raw_end_ = 0;
};

}  // namespace

SourceMap::SourceMap(std::string_view source) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\n') line_starts_.push_back(static_cast<uint32_t>(i + 1));
  }
}

void SourceMap::locate(uint32_t offset, int& line, int& column) const {
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  size_t index = static_cast<size_t>(it - line_starts_.begin()) - 1;
  line = static_cast<int>(index + 1);
  column = static_cast<int>(offset - line_starts_[index] + 1);
}

LexResult tokenize(std::string_view source) {
  LexResult result;
  result.source = normalise_newlines(source);
  Lexer(result).run();
  return result;
}

}  // namespace owl::tmpl
