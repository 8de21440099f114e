// Recursive-descent parser with jinja2's grammar and precedence (jinja2/parser.py):
//   tuple > condexpr (a if c else b) > or > and > not > compare (== != < <= > >= in, not in)
//   > + - > ~ > * / // % > ** > unary - + > primary with postfix (.attr [item] (call))
//   followed by filters `|f(...)` and tests `is [not] t(...)`.
#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

#include "template/ast.h"
#include "template/lexer.h"

namespace owl::tmpl {

namespace {

struct ParseError {
  std::string message;
  uint32_t offset;
};

// Deeper nesting than this is rejected so that a hostile template cannot exhaust the stack.
constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token>& tokens) : tokens_(tokens) {}

  Body parse_all() {
    Body body = subparse({});
    if (current().type != TokenType::End) fail_unknown_tag();
    return body;
  }

 private:
  // ---- token stream ----
  const Token& current() const { return tokens_[pos_]; }
  const Token& look() const { return tokens_[pos_ + 1 < tokens_.size() ? pos_ + 1 : pos_]; }
  void advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool is_op(std::string_view op) const {
    return current().type == TokenType::Operator && current().value == op;
  }
  bool is_name(std::string_view name) const {
    return current().type == TokenType::Name && current().value == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::Text: return "template data";
      case TokenType::VariableBegin: return "begin of print statement";
      case TokenType::VariableEnd: return "end of print statement";
      case TokenType::BlockBegin: return "begin of statement block";
      case TokenType::BlockEnd: return "end of statement block";
      case TokenType::Name: return t.value;
      case TokenType::String: return "string";
      case TokenType::Integer: return "integer";
      case TokenType::Float: return "float";
      case TokenType::Operator: return t.value;
      case TokenType::End: return "end of template";
    }
    return "token";
  }

  [[noreturn]] void fail(std::string message) const { throw ParseError{std::move(message), current().offset}; }
  [[noreturn]] void fail_unexpected(std::string_view expected) const {
    fail(fmt::format("expected token '{}', got '{}'", expected, describe(current())));
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail_unexpected(op);
  }
  void expect_type(TokenType type, std::string_view what) {
    if (current().type != type) fail_unexpected(what);
    advance();
  }
  std::string expect_name() {
    if (current().type != TokenType::Name) fail_unexpected("name");
    std::string name = current().value;
    advance();
    return name;
  }
  void expect_block_end() { expect_type(TokenType::BlockEnd, "end of statement block"); }

  [[noreturn]] void fail_unknown_tag() const {
    std::string tag = current().type == TokenType::Name ? current().value : describe(current());
    if (current().type == TokenType::End) fail("unexpected end of template");
    fail(fmt::format("Encountered unknown tag '{}'.", tag));
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxNesting) parser.fail("template nested too deeply");
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  // ---- statements ----

  // Parses text, output and statements until a block whose tag is one of `end_tags`; the stream
  // is then at that tag name.
  Body subparse(std::initializer_list<std::string_view> end_tags) {
    DepthGuard guard(*this);
    Body body;
    while (current().type != TokenType::End) {
      const Token& t = current();
      if (t.type == TokenType::Text) {
        body.push_back(std::make_unique<TextNode>(t.offset, t.value));
        advance();
      } else if (t.type == TokenType::VariableBegin) {
        advance();
        uint32_t off = current().offset;
        NodePtr expr = parse_tuple(true, {});
        expect_type(TokenType::VariableEnd, "end of print statement");
        body.push_back(std::make_unique<OutputNode>(off, std::move(expr)));
      } else if (t.type == TokenType::BlockBegin) {
        advance();
        for (std::string_view tag : end_tags) {
          if (is_name(tag)) return body;
        }
        body.push_back(parse_statement());
      } else {
        fail(fmt::format("unexpected '{}'", describe(t)));
      }
    }
    if (end_tags.size() > 0) {
      std::string wanted;
      for (std::string_view tag : end_tags) wanted += (wanted.empty() ? "'" : " or '") + std::string(tag) + "'";
      fail("Unexpected end of template. Jinja was looking for the following tags: " + wanted + ".");
    }
    return body;
  }

  // Body of a block statement: consumes the tag's `%}`, then parses until an end tag.
  Body statements(std::initializer_list<std::string_view> end_tags) {
    skip_op(":");
    expect_block_end();
    return subparse(end_tags);
  }

  // Consumes `endX %}`.
  void end_tag(std::string_view name) {
    if (!skip_name(name)) fail_unexpected(name);
    expect_block_end();
  }

  NodePtr parse_statement() {
    if (current().type != TokenType::Name) fail("tag name expected");
    const std::string tag = current().value;
    uint32_t off = current().offset;
    if (tag == "if") return parse_if(off);
    if (tag == "for") return parse_for(off);
    if (tag == "set") return parse_set(off);
    if (tag == "macro") return parse_macro(off);
    if (tag == "call") return parse_call_block(off);
    if (tag == "filter") return parse_filter_block(off);
    if (tag == "with") return parse_with(off);
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside of a loop", tag));
      advance();
      expect_block_end();
      return std::make_unique<Node>(tag == "break" ? NodeKind::Break : NodeKind::Continue, off);
    }
    fail_unknown_tag();
  }

  NodePtr parse_if(uint32_t off) {
    auto node = std::make_unique<IfNode>(off);
    advance();
    while (true) {
      NodePtr cond = parse_tuple(false, {});
      Body body = statements({"elif", "else", "endif"});
      node->branches.emplace_back(std::move(cond), std::move(body));
      if (skip_name("elif")) continue;
      if (skip_name("else")) node->else_body = statements({"endif"});
      break;
    }
    end_tag("endif");
    return node;
  }

  Target parse_target(bool with_namespace, std::string_view end_name) {
    Target target;
    if (with_namespace && current().type == TokenType::Name && look().type == TokenType::Operator &&
        look().value == ".") {
      target.names.push_back(expect_name());
      advance();
      target.attr = expect_name();
      return target;
    }
    bool parens = skip_op("(");
    while (true) {
      if (current().type != TokenType::Name) fail_unexpected("name");
      target.names.push_back(expect_name());
      if (!skip_op(",")) break;
      target.tuple = true;
      if (is_name(end_name) || is_op("=") || is_op(")") || current().type == TokenType::BlockEnd) break;
    }
    if (parens) {
      expect_op(")");
      target.tuple = target.tuple || target.names.size() > 1;
    }
    return target;
  }

  NodePtr parse_for(uint32_t off) {
    auto node = std::make_unique<ForNode>(off);
    advance();
    node->target = parse_target(false, "in");
    if (!skip_name("in")) fail_unexpected("in");
    node->iterable = parse_tuple(false, {"recursive"});
    if (skip_name("if")) node->filter = parse_expression(true);
    node->recursive = skip_name("recursive");
    ++loop_depth_;
    node->body = statements({"endfor", "else"});
    --loop_depth_;
    if (skip_name("else")) node->else_body = statements({"endfor"});
    end_tag("endfor");
    return node;
  }

  NodePtr parse_set(uint32_t off) {
    advance();
    Target target = parse_target(true, "");
    if (skip_op("=")) {
      auto node = std::make_unique<SetNode>(off);
      node->target = std::move(target);
      node->value = parse_tuple(true, {});
      expect_block_end();
      return node;
    }
    auto node = std::make_unique<SetBlockNode>(off);
    node->target = std::move(target);
    if (is_op("|")) node->filter = parse_filter(nullptr, false);
    node->body = statements({"endset"});
    end_tag("endset");
    return node;
  }

  std::vector<Parameter> parse_signature() {
    std::vector<Parameter> params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      Parameter p;
      p.name = expect_name();
      if (skip_op("=")) p.default_value = parse_expression(true);
      params.push_back(std::move(p));
    }
    expect_op(")");
    return params;
  }

  NodePtr parse_macro(uint32_t off) {
    auto node = std::make_unique<MacroNode>(off);
    advance();
    node->name = expect_name();
    node->params = parse_signature();
    int saved_loops = loop_depth_;
    loop_depth_ = 0;
    node->body = statements({"endmacro"});
    loop_depth_ = saved_loops;
    end_tag("endmacro");
    return node;
  }

  NodePtr parse_call_block(uint32_t off) {
    auto node = std::make_unique<CallBlockNode>(off);
    advance();
    if (is_op("(")) node->params = parse_signature();
    node->call = parse_expression(true);
    if (node->call->kind != NodeKind::Call) fail("expected call");
    node->body = statements({"endcall"});
    end_tag("endcall");
    return node;
  }

  NodePtr parse_filter_block(uint32_t off) {
    auto node = std::make_unique<FilterBlockNode>(off);
    advance();
    node->filter = parse_filter(nullptr, true);
    node->body = statements({"endfilter"});
    end_tag("endfilter");
    return node;
  }

  NodePtr parse_with(uint32_t off) {
    auto node = std::make_unique<WithNode>(off);
    advance();
    while (current().type != TokenType::BlockEnd) {
      if (!node->assignments.empty()) expect_op(",");
      std::string name = expect_name();
      expect_op("=");
      node->assignments.emplace_back(std::move(name), parse_expression(true));
    }
    node->body = statements({"endwith"});
    end_tag("endwith");
    return node;
  }

  // ---- expressions ----

  bool is_tuple_end(std::initializer_list<std::string_view> extra_end) const {
    TokenType t = current().type;
    if (t == TokenType::VariableEnd || t == TokenType::BlockEnd || t == TokenType::End) return true;
    if (is_op(")")) return true;
    for (std::string_view name : extra_end) {
      if (is_name(name)) return true;
    }
    return false;
  }

  NodePtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                      bool explicit_parens = false) {
    uint32_t off = current().offset;
    std::vector<NodePtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail(fmt::format("Expected an expression, got '{}'", describe(current())));
    }
    auto node = std::make_unique<SequenceNode>(NodeKind::TupleLit, off);
    node->items = std::move(items);
    return node;
  }

  NodePtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  NodePtr parse_condexpr() {
    uint32_t off = current().offset;
    NodePtr expr = parse_or();
    while (skip_name("if")) {
      auto node = std::make_unique<CondExprNode>(off);
      node->then_expr = std::move(expr);
      node->condition = parse_or();
      if (skip_name("else")) node->else_expr = parse_condexpr();
      expr = std::move(node);
    }
    return expr;
  }

  NodePtr parse_or() {
    NodePtr left = parse_and();
    while (is_name("or")) {
      uint32_t off = current().offset;
      advance();
      left = std::make_unique<BinaryNode>(off, "or", std::move(left), parse_and());
    }
    return left;
  }

  NodePtr parse_and() {
    NodePtr left = parse_not();
    while (is_name("and")) {
      uint32_t off = current().offset;
      advance();
      left = std::make_unique<BinaryNode>(off, "and", std::move(left), parse_not());
    }
    return left;
  }

  NodePtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      uint32_t off = current().offset;
      advance();
      return std::make_unique<UnaryNode>(off, "not", parse_not());
    }
    return parse_compare();
  }

  NodePtr parse_compare() {
    uint32_t off = current().offset;
    NodePtr first = parse_math1();
    std::unique_ptr<CompareNode> node;
    while (true) {
      std::string op;
      if (current().type == TokenType::Operator &&
          (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
        op = current().value;
        advance();
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().type == TokenType::Name && look().value == "in") {
        advance();
        advance();
        op = "notin";
      } else {
        break;
      }
      if (!node) {
        node = std::make_unique<CompareNode>(off);
        node->operands.push_back(std::move(first));
      }
      node->ops.push_back(op);
      node->operands.push_back(parse_math1());
    }
    if (node) return node;
    return first;
  }

  template <typename Next>
  NodePtr binary_chain(std::initializer_list<std::string_view> ops, Next next) {
    NodePtr left = (this->*next)();
    while (current().type == TokenType::Operator) {
      std::string op;
      for (std::string_view candidate : ops) {
        if (current().value == candidate) op = candidate;
      }
      if (op.empty()) break;
      uint32_t off = current().offset;
      advance();
      left = std::make_unique<BinaryNode>(off, op, std::move(left), (this->*next)());
    }
    return left;
  }

  NodePtr parse_math1() { return binary_chain({"+", "-"}, &Parser::parse_concat); }
  NodePtr parse_concat() { return binary_chain({"~"}, &Parser::parse_math2); }
  NodePtr parse_math2() { return binary_chain({"*", "/", "//", "%"}, &Parser::parse_pow); }
  NodePtr parse_pow() { return binary_chain({"**"}, &Parser::parse_unary_filtered); }
  NodePtr parse_unary_filtered() { return parse_unary(true); }

  NodePtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    uint32_t off = current().offset;
    NodePtr node;
    if (is_op("-") || is_op("+")) {
      std::string op = current().value;
      advance();
      node = std::make_unique<UnaryNode>(off, op, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  NodePtr parse_primary() {
    const Token& t = current();
    uint32_t off = t.offset;
    switch (t.type) {
      case TokenType::Name: {
        std::string v = t.value;
        advance();
        if (v == "true" || v == "True") return std::make_unique<LiteralNode>(off, Value(true));
        if (v == "false" || v == "False") return std::make_unique<LiteralNode>(off, Value(false));
        if (v == "none" || v == "None") return std::make_unique<LiteralNode>(off, Value::none());
        return std::make_unique<NameNode>(off, std::move(v));
      }
      case TokenType::String: {
        std::string s;
        while (current().type == TokenType::String) {
          s += current().value;
          advance();
        }
        return std::make_unique<LiteralNode>(off, Value(std::move(s)));
      }
      case TokenType::Integer: return std::make_unique<LiteralNode>(off, parse_integer(t));
      case TokenType::Float: {
        double v = std::strtod(t.value.c_str(), nullptr);
        advance();
        return std::make_unique<LiteralNode>(off, Value(v));
      }
      case TokenType::Operator:
        if (t.value == "(") {
          advance();
          NodePtr node = parse_tuple(true, {}, true);
          expect_op(")");
          return node;
        }
        if (t.value == "[") return parse_list(off);
        if (t.value == "{") return parse_dict(off);
        break;
      default: break;
    }
    fail(fmt::format("unexpected '{}'", describe(t)));
  }

  Value parse_integer(const Token& t) {
    std::string_view s = t.value;
    int base = 10;
    if (s.size() > 1 && s[0] == '0' && (s[1] | 0x20) != '0') {
      base = (s[1] | 0x20) == 'x' ? 16 : (s[1] | 0x20) == 'o' ? 8 : 2;
      s.remove_prefix(2);
    }
    int64_t v = 0;
    auto res = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (res.ec != std::errc()) fail(fmt::format("integer literal too large: {}", t.value));
    advance();
    return Value(v);
  }

  NodePtr parse_list(uint32_t off) {
    advance();
    auto node = std::make_unique<SequenceNode>(NodeKind::ListLit, off);
    while (!is_op("]")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("]")) break;
      node->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return node;
  }

  NodePtr parse_dict(uint32_t off) {
    advance();
    auto node = std::make_unique<SequenceNode>(NodeKind::DictLit, off);
    while (!is_op("}")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("}")) break;
      node->items.push_back(parse_expression(true));
      expect_op(":");
      node->items.push_back(parse_expression(true));
    }
    expect_op("}");
    return node;
  }

  NodePtr parse_postfix(NodePtr node) {
    while (true) {
      DepthGuard guard(*this);
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        auto call = std::make_unique<CallNode>(NodeKind::Call, current().offset);
        call->object = std::move(node);
        call->args = parse_call_args();
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  NodePtr parse_subscript(NodePtr node) {
    uint32_t off = node->offset;  // errors point at the start of the expression
    if (skip_op(".")) {
      const Token& t = current();
      if (t.type == TokenType::Name) {
        std::string attr = t.value;
        advance();
        return std::make_unique<GetAttrNode>(off, std::move(node), std::move(attr));
      }
      if (t.type != TokenType::Integer) fail("expected name or number");
      NodePtr index = std::make_unique<LiteralNode>(t.offset, parse_integer(t));
      return std::make_unique<GetItemNode>(off, std::move(node), std::move(index));
    }
    advance();  // '['
    std::vector<NodePtr> args;
    NodePtr slice;
    while (!is_op("]")) {
      if (!args.empty() || slice) expect_op(",");
      NodePtr arg = parse_subscribed(off);
      if (arg->kind == NodeKind::Slice) {
        if (slice || !args.empty()) fail("multiple slices are not supported");
        slice = std::move(arg);
      } else {
        if (slice) fail("multiple slices are not supported");
        args.push_back(std::move(arg));
      }
    }
    expect_op("]");
    if (slice) {
      static_cast<SliceNode&>(*slice).object = std::move(node);
      return slice;
    }
    if (args.empty()) fail("expected an index");
    NodePtr index;
    if (args.size() == 1) {
      index = std::move(args[0]);
    } else {
      auto tuple = std::make_unique<SequenceNode>(NodeKind::TupleLit, off);
      tuple->items = std::move(args);
      index = std::move(tuple);
    }
    return std::make_unique<GetItemNode>(off, std::move(node), std::move(index));
  }

  // An index or a slice `[start]:[stop][:[step]]` (a SliceNode without object).
  NodePtr parse_subscribed(uint32_t off) {
    NodePtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    advance();
    auto slice = std::make_unique<SliceNode>(off);
    slice->start = std::move(start);
    if (!is_op(":") && !is_op("]") && !is_op(",")) slice->stop = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) slice->step = parse_expression(true);
    }
    return slice;
  }

  std::vector<Argument> parse_call_args() {
    expect_op("(");
    std::vector<Argument> args;
    bool has_keyword = false;
    while (!is_op(")")) {
      if (!args.empty()) {
        expect_op(",");
        if (is_op(")")) break;
      }
      Argument arg;
      if (current().type == TokenType::Name && look().type == TokenType::Operator && look().value == "=") {
        arg.name = current().value;
        advance();
        advance();
        has_keyword = true;
      } else if (has_keyword) {
        fail("positional argument follows keyword argument");
      }
      arg.value = parse_expression(true);
      args.push_back(std::move(arg));
    }
    expect_op(")");
    return args;
  }

  // `|name(args)|name2...`; `start_inline` when the first filter has no leading pipe.
  NodePtr parse_filter(NodePtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      DepthGuard guard(*this);
      if (!start_inline) advance();
      start_inline = false;
      uint32_t off = current().offset;
      std::string name = expect_name();
      while (skip_op(".")) name += "." + expect_name();
      auto filter = std::make_unique<CallNode>(NodeKind::Filter, off);
      filter->object = std::move(node);
      filter->name = std::move(name);
      if (is_op("(")) filter->args = parse_call_args();
      node = std::move(filter);
    }
    return node;
  }

  NodePtr parse_filter_expr(NodePtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        DepthGuard guard(*this);
        auto call = std::make_unique<CallNode>(NodeKind::Call, current().offset);
        call->object = std::move(node);
        call->args = parse_call_args();
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  NodePtr parse_test(NodePtr node) {
    DepthGuard guard(*this);
    uint32_t off = current().offset;
    advance();  // 'is'
    auto test = std::make_unique<CallNode>(NodeKind::Test, off);
    test->negated = skip_name("not");
    test->name = expect_name();
    while (skip_op(".")) test->name += "." + expect_name();
    test->object = std::move(node);
    const Token& t = current();
    if (is_op("(")) {
      test->args = parse_call_args();
    } else if ((t.type == TokenType::Name || t.type == TokenType::String || t.type == TokenType::Integer ||
                t.type == TokenType::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      Argument arg;
      arg.value = parse_postfix(parse_primary());
      test->args.push_back(std::move(arg));
    }
    return test;
  }

  std::vector<Token>& tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

ParseResult parse_template(std::string_view source) {
  ParseResult result;
  LexResult lexed = tokenize(source);
  result.source = std::move(lexed.source);
  if (!lexed.error.empty()) {
    result.error = std::move(lexed.error);
    result.error_offset = lexed.error_offset;
    return result;
  }
  try {
    Parser parser(lexed.tokens);
    result.body = parser.parse_all();
  } catch (const ParseError& e) {
    result.body.clear();
    result.error = e.message;
    result.error_offset = e.offset;
  }
  return result;
}

}  // namespace owl::tmpl
