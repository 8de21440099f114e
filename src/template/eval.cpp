// The tree-walking evaluator. Scoping follows jinja2: each loop iteration, macro call and `with`
// block gets a fresh frame (so `set` inside a loop does not leak out or carry over to the next
// iteration); `if` does not. State that must outlive an iteration goes through namespace().
#include <fmt/format.h>

#include "template/interpreter.h"

namespace owl::tmpl {

const Value* Frame::lookup(const std::string& name) const {
  for (const Frame* f = this; f; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return &it->second;
  }
  return nullptr;
}

namespace {

// Makes `frame` current for a scope and restores the previous one on exit.
class ScopedFrame {
 public:
  ScopedFrame(FramePtr& current, FramePtr frame) : current_(current), saved_(std::move(current)) {
    current_ = std::move(frame);
  }
  ~ScopedFrame() { current_ = std::move(saved_); }
  ScopedFrame(const ScopedFrame&) = delete;
  ScopedFrame& operator=(const ScopedFrame&) = delete;

 private:
  FramePtr& current_;
  FramePtr saved_;
};

FramePtr child_frame(const FramePtr& parent) {
  auto frame = std::make_shared<Frame>();
  frame->parent = parent;
  return frame;
}

class DepthCounter {
 public:
  DepthCounter(int& depth, int limit) : depth_(depth) {
    if (++depth_ > limit) {
      --depth_;
      throw_error("template evaluation nested too deeply");
    }
  }
  ~DepthCounter() { --depth_; }

 private:
  int& depth_;
};

}  // namespace

std::string Interpreter::render(const Body& body, FramePtr globals) {
  frame_ = std::move(globals);
  std::string out;
  try {
    exec(body, out);
  } catch (...) {
    release_cycles();
    throw;
  }
  release_cycles();
  return out;
}

void Interpreter::note_mutation(const Value& container) {
  const void* key = container.is_list() ? static_cast<const void*>(&container.as_list())
                                         : static_cast<const void*>(&container.as_dict());
  if (mutated_keys_.insert(key).second) mutated_.push_back(container);
}

void Interpreter::release_cycles() {
  for (Value& v : mutated_) {
    if (v.is_list()) v.as_list().items.clear();
    if (v.is_dict()) v.as_dict().items.clear();
  }
  mutated_.clear();
  mutated_keys_.clear();
  for (FramePtr& frame : closures_) frame->vars.clear();
  closures_.clear();
  frame_.reset();
}

void Interpreter::locate(RenderError& error, uint32_t offset) const {
  if (error.line != 0 || error.raised) return;
  map_.locate(offset, error.line, error.column);
}

void Interpreter::step() {
  if (++steps_ > options_.limits.max_steps) throw_error("template exceeded its work limit");
}

void Interpreter::charge(size_t bytes) {
  if (bytes > options_.limits.max_output_bytes) {
    throw_error(fmt::format("string of {} bytes exceeds the limit of {}", bytes, options_.limits.max_output_bytes));
  }
  charged_ += bytes;
  if (charged_ > options_.limits.max_string_work) throw_error("template exceeded its string work limit");
}

void Interpreter::emit(std::string& out, std::string_view text) {
  if (out.size() + text.size() > options_.limits.max_output_bytes) {
    throw_error(fmt::format("output exceeds the limit of {} bytes", options_.limits.max_output_bytes));
  }
  charge(text.size());
  out += text;
}

std::tm Interpreter::now() const {
  if (options_.clock) return options_.clock();
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

// ---- statements ----

Interpreter::Flow Interpreter::exec(const Body& body, std::string& out) {
  for (const NodePtr& node : body) {
    Flow flow = exec_node(*node, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_node(const Node& node, std::string& out) {
  step();
  DepthCounter depth(depth_, options_.limits.max_eval_depth);
  Flow flow = Flow::Normal;
  try {
    switch (node.kind) {
      case NodeKind::Text: emit(out, static_cast<const TextNode&>(node).text); break;
      case NodeKind::Output: emit(out, eval(*static_cast<const OutputNode&>(node).expr).str()); break;
      case NodeKind::If: exec_if(static_cast<const IfNode&>(node), out, flow); break;
      case NodeKind::For: flow = exec_for(static_cast<const ForNode&>(node), out); break;
      case NodeKind::Set: {
        const auto& set = static_cast<const SetNode&>(node);
        assign(set.target, eval(*set.value));
        break;
      }
      case NodeKind::SetBlock: {
        const auto& set = static_cast<const SetBlockNode&>(node);
        std::string text;
        exec(set.body, text);
        Value value(std::move(text));
        if (set.filter) value = apply_filter_chain(*set.filter, std::move(value));
        assign(set.target, std::move(value));
        break;
      }
      case NodeKind::Macro: exec_macro(static_cast<const MacroNode&>(node)); break;
      case NodeKind::CallBlock: exec_call_block(static_cast<const CallBlockNode&>(node), out); break;
      case NodeKind::FilterBlock: {
        const auto& block = static_cast<const FilterBlockNode&>(node);
        std::string text;
        exec(block.body, text);
        emit(out, apply_filter_chain(*block.filter, Value(std::move(text))).str());
        break;
      }
      case NodeKind::With: {
        const auto& with = static_cast<const WithNode&>(node);
        FramePtr frame = child_frame(frame_);
        for (const auto& [name, expr] : with.assignments) frame->vars[name] = eval(*expr);
        ScopedFrame scope(frame_, frame);
        flow = exec(with.body, out);
        break;
      }
      case NodeKind::Break: return Flow::Break;
      case NodeKind::Continue: return Flow::Continue;
      default: throw_error("not a statement");
    }
  } catch (RenderError& e) {
    locate(e, node.offset);
    throw;
  }
  return flow;
}

void Interpreter::exec_if(const IfNode& node, std::string& out, Flow& flow) {
  for (const auto& [condition, body] : node.branches) {
    if (eval(*condition).truthy()) {
      flow = exec(body, out);
      return;
    }
  }
  flow = exec(node.else_body, out);
}

void Interpreter::assign(const Target& target, Value value) {
  if (!target.attr.empty()) {
    const Value* ns = frame_->lookup(target.names[0]);
    if (!ns || !ns->is_dict() || ns->as_dict().kind != Dict::Kind::Namespace) {
      throw_error("Cannot assign attribute on non-namespace object");
    }
    ns->as_dict().set(Value(target.attr), std::move(value));
    note_mutation(*ns);
    return;
  }
  if (!target.tuple) {
    frame_->vars[target.names[0]] = std::move(value);
    return;
  }
  require_defined(value);
  std::vector<Value> items = iterate(value);
  if (items.size() != target.names.size()) {
    throw_error(items.size() > target.names.size()
                    ? fmt::format("too many values to unpack (expected {})", target.names.size())
                    : fmt::format("not enough values to unpack (expected {}, got {})", target.names.size(),
                                  items.size()));
  }
  for (size_t i = 0; i < items.size(); ++i) frame_->vars[target.names[i]] = std::move(items[i]);
}

Interpreter::Flow Interpreter::exec_for(const ForNode& node, std::string& out) {
  if (node.recursive) throw_error("recursive loops are not supported");
  Value iterable = eval(*node.iterable);
  if (iterable.is_none() || iterable.is_number()) {
    throw_error(fmt::format("'{}' object is not iterable", iterable.type_name()));
  }
  std::vector<Value> items = iterate(iterable);
  if (node.filter) {
    std::vector<Value> kept;
    for (Value& item : items) {
      step();
      ScopedFrame scope(frame_, child_frame(frame_));
      assign(node.target, item);
      if (eval(*node.filter).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(node.else_body, out);
  auto n = static_cast<int64_t>(items.size());
  auto index = std::make_shared<int64_t>(0);
  Value cycle = make_callable("cycle", [index](Interpreter&, CallArgs& args) -> Value {
    if (args.positional.empty()) throw_error("no items for cycling given");
    return args.positional[static_cast<size_t>(*index % static_cast<int64_t>(args.positional.size()))];
  });
  for (int64_t i = 0; i < n; ++i) {
    step();
    *index = i;
    FramePtr frame = child_frame(frame_);
    Value loop = Value::make_dict();
    Dict& d = loop.as_dict();
    d.kind = Dict::Kind::Loop;
    d.items = {{Value("index"), Value(i + 1)},     {Value("index0"), Value(i)},
               {Value("revindex"), Value(n - i)},  {Value("revindex0"), Value(n - i - 1)},
               {Value("first"), Value(i == 0)},    {Value("last"), Value(i == n - 1)},
               {Value("length"), Value(n)},        {Value("depth"), Value(1)},
               {Value("depth0"), Value(0)},        {Value("cycle"), cycle}};
    if (i > 0) d.items.emplace_back(Value("previtem"), items[static_cast<size_t>(i - 1)]);
    if (i + 1 < n) d.items.emplace_back(Value("nextitem"), items[static_cast<size_t>(i + 1)]);
    frame->vars["loop"] = std::move(loop);
    ScopedFrame scope(frame_, frame);
    assign(node.target, items[static_cast<size_t>(i)]);
    if (exec(node.body, out) == Flow::Break) break;
  }
  return Flow::Normal;
}

Value Interpreter::make_macro(const std::string& name, const std::vector<Parameter>& params, const Body& body) {
  Macro macro{name, &params, &body, frame_};
  if (closures_.empty() || closures_.back() != frame_) closures_.push_back(frame_);
  return make_callable(name, [macro](Interpreter& in, CallArgs& args) { return in.call_macro(macro, args); });
}

void Interpreter::exec_macro(const MacroNode& node) {
  frame_->vars[node.name] = make_macro(node.name, node.params, node.body);
}

void Interpreter::exec_call_block(const CallBlockNode& node, std::string& out) {
  const auto& call = static_cast<const CallNode&>(*node.call);
  Value callee = eval(*call.object);
  CallArgs args = eval_args(call.args);
  args.keyword.emplace_back("caller", make_macro("caller", node.params, node.body));
  emit(out, this->call(callee, args).str());
}

Value Interpreter::call_macro(const Macro& macro, CallArgs& args) {
  if (call_depth_ >= options_.limits.max_call_depth) {
    throw_error(fmt::format("macro '{}': calls nested deeper than {}", macro.name, options_.limits.max_call_depth));
  }
  FramePtr frame = child_frame(macro.closure);
  const auto& params = *macro.params;
  std::vector<bool> bound(params.size(), false);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < params.size()) {
      frame->vars[params[i].name] = args.positional[i];
      bound[i] = true;
    } else {
      varargs.push_back(args.positional[i]);
    }
  }
  Value kwargs = Value::make_dict();
  for (auto& [name, value] : args.keyword) {
    size_t i = 0;
    while (i < params.size() && params[i].name != name) ++i;
    if (i < params.size()) {
      if (bound[i]) throw_error(fmt::format("macro '{}' got multiple values for argument '{}'", macro.name, name));
      frame->vars[name] = value;
      bound[i] = true;
    } else if (name == "caller") {
      frame->vars["caller"] = value;
    } else {
      kwargs.as_dict().set(Value(name), value);
    }
  }
  frame->vars["varargs"] = Value::make_list(std::move(varargs), true);
  frame->vars["kwargs"] = std::move(kwargs);
  ScopedFrame scope(frame_, frame);
  for (size_t i = 0; i < params.size(); ++i) {
    if (bound[i]) continue;
    frame->vars[params[i].name] = params[i].default_value
                                      ? eval(*params[i].default_value)
                                      : Value::undefined(fmt::format("parameter '{}' was not provided", params[i].name));
  }
  ++call_depth_;
  std::string out;
  try {
    exec(*macro.body, out);
  } catch (...) {
    --call_depth_;
    throw;
  }
  --call_depth_;
  return Value(std::move(out));
}

// ---- expressions ----

Value Interpreter::eval(const Node& node) {
  DepthCounter depth(depth_, options_.limits.max_eval_depth);
  try {
    return eval_inner(node);
  } catch (RenderError& e) {
    locate(e, node.offset);
    throw;
  }
}

Value Interpreter::eval_inner(const Node& node) {
  switch (node.kind) {
    case NodeKind::Literal: return static_cast<const LiteralNode&>(node).value;
    case NodeKind::Name: {
      const auto& name = static_cast<const NameNode&>(node).name;
      if (const Value* v = frame_->lookup(name)) return *v;
      return Value::undefined(fmt::format("'{}' is undefined", name));
    }
    case NodeKind::ListLit:
    case NodeKind::TupleLit: {
      std::vector<Value> items;
      for (const NodePtr& item : static_cast<const SequenceNode&>(node).items) items.push_back(eval(*item));
      return Value::make_list(std::move(items), node.kind == NodeKind::TupleLit);
    }
    case NodeKind::DictLit: {
      const auto& items = static_cast<const SequenceNode&>(node).items;
      Value d = Value::make_dict();
      for (size_t i = 0; i + 1 < items.size(); i += 2) d.as_dict().set(eval(*items[i]), eval(*items[i + 1]));
      return d;
    }
    case NodeKind::GetAttr: {
      const auto& n = static_cast<const GetAttrNode&>(node);
      return get_attribute(eval(*n.object), n.attr);
    }
    case NodeKind::GetItem: {
      const auto& n = static_cast<const GetItemNode&>(node);
      Value obj = eval(*n.object);
      return get_item(obj, eval(*n.index));
    }
    case NodeKind::Slice: {
      const auto& n = static_cast<const SliceNode&>(node);
      Value obj = eval(*n.object);
      Value start = n.start ? eval(*n.start) : Value::none();
      Value stop = n.stop ? eval(*n.stop) : Value::none();
      Value step_v = n.step ? eval(*n.step) : Value::none();
      return slice(obj, start, stop, step_v);
    }
    case NodeKind::Call: return eval_call(static_cast<const CallNode&>(node));
    case NodeKind::Filter: {
      const auto& n = static_cast<const CallNode&>(node);
      return eval_filter(n, eval(*n.object));
    }
    case NodeKind::Test: return eval_test(static_cast<const CallNode&>(node));
    case NodeKind::Unary: {
      const auto& n = static_cast<const UnaryNode&>(node);
      Value v = eval(*n.operand);
      if (n.op == "not") return Value(!v.truthy());
      if (n.op == "-") return negate(v);
      require_defined(v);
      if (!v.is_number()) throw_error(fmt::format("bad operand type for unary +: '{}'", v.type_name()));
      return v.is_bool() ? Value(static_cast<int64_t>(v.as_bool())) : v;
    }
    case NodeKind::Binary: {
      const auto& n = static_cast<const BinaryNode&>(node);
      Value left = eval(*n.left);
      if (n.op == "and") return left.truthy() ? eval(*n.right) : left;
      if (n.op == "or") return left.truthy() ? left : eval(*n.right);
      return binary_op(*this, n.op, left, eval(*n.right));
    }
    case NodeKind::Compare: return eval_compare(static_cast<const CompareNode&>(node));
    case NodeKind::CondExpr: {
      const auto& n = static_cast<const CondExprNode&>(node);
      if (eval(*n.condition).truthy()) return eval(*n.then_expr);
      if (n.else_expr) return eval(*n.else_expr);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
    }
    default: throw_error("not an expression");
  }
}

Value Interpreter::eval_compare(const CompareNode& node) {
  Value left = eval(*node.operands[0]);
  for (size_t i = 0; i < node.ops.size(); ++i) {
    Value right = eval(*node.operands[i + 1]);
    const std::string& op = node.ops[i];
    bool result;
    if (op == "==") {
      result = left.equals(right);
    } else if (op == "!=") {
      result = !left.equals(right);
    } else if (op == "in" || op == "notin") {
      result = contains(right, left) == (op == "in");
    } else {
      require_defined(left);
      require_defined(right);
      int c;
      try {
        c = left.compare(right);
      } catch (RenderError& e) {
        e.message = fmt::format("'{}' not supported between instances of '{}' and '{}'", op, left.type_name(),
                                right.type_name());
        throw;
      }
      result = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!result) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

CallArgs Interpreter::eval_args(const std::vector<Argument>& args) {
  CallArgs out;
  for (const Argument& arg : args) {
    if (arg.name.empty()) {
      out.positional.push_back(eval(*arg.value));
    } else {
      out.keyword.emplace_back(arg.name, eval(*arg.value));
    }
  }
  return out;
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  step();
  if (!callee.is_callable()) {
    require_defined(callee);
    throw_error(fmt::format("'{}' object is not callable", callee.type_name()));
  }
  return callee.as_callable().fn(*this, args);
}

Value Interpreter::eval_call(const CallNode& node) {
  Value callee = eval(*node.object);
  CallArgs args = eval_args(node.args);
  return call(callee, args);
}

Value Interpreter::eval_filter(const CallNode& node, Value input) {
  FilterFn fn = find_filter(node.name);
  if (!fn) throw_error(fmt::format("No filter named '{}'.", node.name));
  CallArgs args = eval_args(node.args);
  return fn(*this, input, args);
}

Value Interpreter::apply_filter_chain(const Node& filter, Value input) {
  const auto& node = static_cast<const CallNode&>(filter);
  if (node.object) input = apply_filter_chain(*node.object, std::move(input));
  try {
    return eval_filter(node, std::move(input));
  } catch (RenderError& e) {
    locate(e, node.offset);
    throw;
  }
}

Value Interpreter::eval_test(const CallNode& node) {
  TestFn fn = find_test(node.name);
  if (!fn) throw_error(fmt::format("No test named '{}'.", node.name));
  Value value = eval(*node.object);
  CallArgs args = eval_args(node.args);
  bool result = fn(*this, value, args);
  return Value(node.negated ? !result : result);
}

}  // namespace owl::tmpl
