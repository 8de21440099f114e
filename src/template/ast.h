// The syntax tree of a template. Every node keeps the byte offset of its first token so that
// errors can name line and column. Nodes are immutable after parsing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/value.h"

namespace owl::tmpl {

enum class NodeKind : uint8_t {
  // expressions
  Literal, Name, ListLit, TupleLit, DictLit, GetAttr, GetItem, Slice, Call, Filter, Test, Unary,
  Binary, Compare, CondExpr,
  // statements
  Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, With,
};

struct Node {
  Node(NodeKind k, uint32_t off) : kind(k), offset(off) {}
  virtual ~Node() = default;
  NodeKind kind;
  uint32_t offset;
};
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

// ---- expressions ----

struct LiteralNode : Node {
  LiteralNode(uint32_t off, Value v) : Node(NodeKind::Literal, off), value(std::move(v)) {}
  Value value;
};

struct NameNode : Node {
  NameNode(uint32_t off, std::string n) : Node(NodeKind::Name, off), name(std::move(n)) {}
  std::string name;
};

// ListLit, TupleLit: items; DictLit: pairs of key, value in `items` (even count).
struct SequenceNode : Node {
  using Node::Node;
  std::vector<NodePtr> items;
};

struct GetAttrNode : Node {
  GetAttrNode(uint32_t off, NodePtr o, std::string a)
      : Node(NodeKind::GetAttr, off), object(std::move(o)), attr(std::move(a)) {}
  NodePtr object;
  std::string attr;
};

struct GetItemNode : Node {
  GetItemNode(uint32_t off, NodePtr o, NodePtr i)
      : Node(NodeKind::GetItem, off), object(std::move(o)), index(std::move(i)) {}
  NodePtr object, index;
};

struct SliceNode : Node {
  explicit SliceNode(uint32_t off) : Node(NodeKind::Slice, off) {}
  NodePtr object, start, stop, step;  // start/stop/step may be null
};

struct Argument {
  std::string name;  // empty for positional
  NodePtr value;
};

// Call: callee(args); Filter: object|name(args) (object null inside a filter block);
// Test: object is name(args), negated for `is not`.
struct CallNode : Node {
  using Node::Node;
  NodePtr object;
  std::string name;
  std::vector<Argument> args;
  bool negated = false;
};

struct UnaryNode : Node {
  UnaryNode(uint32_t off, std::string o, NodePtr e)
      : Node(NodeKind::Unary, off), op(std::move(o)), operand(std::move(e)) {}
  std::string op;  // "not", "-", "+"
  NodePtr operand;
};

struct BinaryNode : Node {
  BinaryNode(uint32_t off, std::string o, NodePtr l, NodePtr r)
      : Node(NodeKind::Binary, off), op(std::move(o)), left(std::move(l)), right(std::move(r)) {}
  std::string op;  // + - * / // % ** ~ and or
  NodePtr left, right;
};

// a < b <= c ...: ops[i] compares operands[i] and operands[i + 1].
struct CompareNode : Node {
  explicit CompareNode(uint32_t off) : Node(NodeKind::Compare, off) {}
  std::vector<NodePtr> operands;
  std::vector<std::string> ops;  // == != < <= > >= in notin
};

struct CondExprNode : Node {
  explicit CondExprNode(uint32_t off) : Node(NodeKind::CondExpr, off) {}
  NodePtr condition, then_expr, else_expr;  // else_expr may be null (undefined)
};

// ---- statements ----

struct TextNode : Node {
  TextNode(uint32_t off, std::string t) : Node(NodeKind::Text, off), text(std::move(t)) {}
  std::string text;
};

struct OutputNode : Node {
  OutputNode(uint32_t off, NodePtr e) : Node(NodeKind::Output, off), expr(std::move(e)) {}
  NodePtr expr;
};

struct IfNode : Node {
  explicit IfNode(uint32_t off) : Node(NodeKind::If, off) {}
  std::vector<std::pair<NodePtr, Body>> branches;  // if, elif...
  Body else_body;
};

// An assignment target: a name, a tuple of names, or `ns.attr`.
struct Target {
  std::vector<std::string> names;  // one name, or several for tuple unpacking
  bool tuple = false;
  std::string attr;  // non-empty: names[0].attr = value (namespace assignment)
};

struct ForNode : Node {
  explicit ForNode(uint32_t off) : Node(NodeKind::For, off) {}
  Target target;
  NodePtr iterable, filter;  // filter may be null
  Body body, else_body;
  bool recursive = false;
};

struct SetNode : Node {
  explicit SetNode(uint32_t off) : Node(NodeKind::Set, off) {}
  Target target;
  NodePtr value;
};

// {% set x %}...{% endset %}, optionally {% set x | filter %}.
struct SetBlockNode : Node {
  explicit SetBlockNode(uint32_t off) : Node(NodeKind::SetBlock, off) {}
  Target target;
  NodePtr filter;  // a Filter node chain whose innermost object is null; may be null
  Body body;
};

struct Parameter {
  std::string name;
  NodePtr default_value;  // may be null
};

struct MacroNode : Node {
  explicit MacroNode(uint32_t off) : Node(NodeKind::Macro, off) {}
  std::string name;
  std::vector<Parameter> params;
  Body body;
};

// {% call(params) macro(args) %}body{% endcall %}: body becomes `caller`.
struct CallBlockNode : Node {
  explicit CallBlockNode(uint32_t off) : Node(NodeKind::CallBlock, off) {}
  NodePtr call;
  std::vector<Parameter> params;
  Body body;
};

struct FilterBlockNode : Node {
  explicit FilterBlockNode(uint32_t off) : Node(NodeKind::FilterBlock, off) {}
  NodePtr filter;  // Filter chain with a null innermost object
  Body body;
};

struct WithNode : Node {
  explicit WithNode(uint32_t off) : Node(NodeKind::With, off) {}
  std::vector<std::pair<std::string, NodePtr>> assignments;
  Body body;
};

struct ParseResult {
  Body body;
  std::string source;  // normalised source that offsets refer to
  std::string error;   // empty on success
  uint32_t error_offset = 0;
};

// Parses a template; never throws.
ParseResult parse_template(std::string_view source);

}  // namespace owl::tmpl
