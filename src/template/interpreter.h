// The evaluator's internal interface, shared by the statement/expression evaluator (eval.cpp),
// Python operators (ops.cpp), filters and tests (filters.cpp) and methods and globals
// (methods.cpp). Not part of the public API (template.h).
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "template/ast.h"
#include "template/lexer.h"
#include "template/template.h"
#include "template/value.h"

namespace owl::tmpl {

// A scope: the template's top level, one loop iteration, one macro call, a `with` block.
struct Frame {
  std::shared_ptr<Frame> parent;
  std::unordered_map<std::string, Value> vars;

  const Value* lookup(const std::string& name) const;
};
using FramePtr = std::shared_ptr<Frame>;

class Interpreter {
 public:
  Interpreter(const SourceMap& map, const RenderOptions& options) : map_(map), options_(options) {}

  // Renders `body` with `globals` as the outermost scope; throws RenderError.
  std::string render(const Body& body, FramePtr globals);

  // Calls a function value (builtin, bound method or macro).
  Value call(const Value& callee, CallArgs& args);
  // Budget checks: a string of `bytes` is about to be built; one unit of work is done.
  void charge(size_t bytes);
  void step();
  std::tm now() const;
  const RenderOptions& options() const { return options_; }
  // Records a list/dict that had a value inserted (append, update, ns.x = ...). Only such
  // mutations can make reference cycles; render() clears these containers when it ends so that
  // shared_ptr cycles never outlive a render.
  void note_mutation(const Value& container);

  // A macro (or the `caller` of a call block): its signature and body live in the parsed
  // template, which outlives every render; `closure` is the scope it was defined in.
  struct Macro {
    std::string name;
    const std::vector<Parameter>* params;
    const Body* body;
    FramePtr closure;
  };
  Value call_macro(const Macro& macro, CallArgs& args);

 private:
  enum class Flow { Normal, Break, Continue };
  Flow exec(const Body& body, std::string& out);
  Flow exec_node(const Node& node, std::string& out);
  Flow exec_for(const ForNode& node, std::string& out);
  void exec_if(const IfNode& node, std::string& out, Flow& flow);
  void exec_macro(const MacroNode& node);
  void exec_call_block(const CallBlockNode& node, std::string& out);
  void assign(const Target& target, Value value);
  Value make_macro(const std::string& name, const std::vector<Parameter>& params, const Body& body);
  Value apply_filter_chain(const Node& filter, Value input);
  Value eval(const Node& node);
  Value eval_inner(const Node& node);
  Value eval_call(const CallNode& node);
  Value eval_filter(const CallNode& node, Value input);
  Value eval_test(const CallNode& node);
  Value eval_compare(const CompareNode& node);
  CallArgs eval_args(const std::vector<Argument>& args);
  void emit(std::string& out, std::string_view text);
  void locate(RenderError& error, uint32_t offset) const;

  void release_cycles();

  const SourceMap& map_;
  const RenderOptions& options_;
  FramePtr frame_;
  std::vector<Value> mutated_;  // see note_mutation()
  std::unordered_set<const void*> mutated_keys_;
  std::vector<FramePtr> closures_;  // frames captured by macros (frame -> macro -> frame)
  int depth_ = 0;
  int call_depth_ = 0;
  uint64_t steps_ = 0;
  uint64_t charged_ = 0;
};

// ---- Python operators (ops.cpp) ----

// Items of an iterable: list items, dict keys, string characters; undefined is empty.
std::vector<Value> iterate(const Value& v);
int64_t length(const Value& v);
bool contains(const Value& container, const Value& item);
Value binary_op(Interpreter& in, std::string_view op, const Value& a, const Value& b);
Value negate(const Value& v);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// obj[key] then obj.key (jinja2's Environment.getitem) / obj.key then obj[key] (getattr).
Value get_item(const Value& obj, const Value& key);
Value get_attribute(const Value& obj, const std::string& name);
// Throws the undefined value's message ("'x' is undefined") when `v` is undefined.
void require_defined(const Value& v);
// Python's "%" string formatting.
std::string percent_format(Interpreter& in, const std::string& format, const Value& args);

// ---- filters and tests (filters.cpp) ----

using FilterFn = Value (*)(Interpreter&, const Value& input, CallArgs& args);
using TestFn = bool (*)(Interpreter&, const Value& input, CallArgs& args);
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

// ---- methods and globals (methods.cpp) ----

// A bound method of a str, list or dict, or undefined when the type has no such method.
Value find_method(const Value& obj, const std::string& name);
void install_globals(Frame& globals);

// Binds call arguments to parameter names, Python-style; errors name the function.
class ArgBinder {
 public:
  ArgBinder(const CallArgs& args, std::string_view function, std::initializer_list<std::string_view> names);
  bool has(size_t i) const { return !values_[i].is_undefined() || given_[i]; }
  const Value& get(size_t i) const { return values_[i]; }
  const Value& get_or(size_t i, const Value& fallback) const { return has(i) ? values_[i] : fallback; }
  int64_t get_int(size_t i, int64_t fallback) const;
  bool get_bool(size_t i, bool fallback) const { return has(i) ? values_[i].truthy() : fallback; }
  std::string get_string(size_t i, const std::string& fallback) const;

 private:
  std::string function_;
  std::vector<Value> values_;
  std::vector<bool> given_;
};

}  // namespace owl::tmpl
