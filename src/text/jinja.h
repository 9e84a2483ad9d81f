// A small, safe interpreter for the Jinja2 subset that chat templates use (internal to text/).
//
// It renders like transformers' apply_chat_template does: an immutable sandboxed environment
// with trim_blocks and lstrip_blocks on, newlines normalized to "\n" and one trailing newline
// of the source dropped. Supported: text, {{ }}, {% if/elif/else %}, {% for %} (with `loop`,
// tuple targets, a filter, an else branch, break/continue), {% set %} (names, namespace
// attributes, blocks), {% macro %}, {% generation %}, comments and whitespace control (-, +);
// expressions with literals (strings, numbers, lists, dicts),
// and/or/not, comparisons, in / not in, is [not] <test>, + - * / // % ** ~, x if c else y,
// attribute and item access, slices, filters and a few functions and methods (see
// docs/chat_templates.md). Anything else is a parse or render error with a line number, never
// silently different output. Every resource is bounded (kMax* in chat_template.h).
//
// A parsed Template is immutable; Render() is const and may run on many threads at once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::jinja {

struct Node;
struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like Python dicts

enum class Kind : uint8_t {
  kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction,
};

// A template value. Lists and dicts are shared and never mutated after construction;
// namespaces are shared and mutable (Jinja semantics: `set ns.x = ...` is seen everywhere).
inline constexpr int64_t kPlainList = 0;
inline constexpr int64_t kDictView = 1;   // dict.items() / keys() / values()
inline constexpr int64_t kRange = 2;      // range(...)
inline constexpr int64_t kIterator = 3;   // reverse filter, items filter (generators)

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;                 // kBool: the value; kList: true for a tuple
  int64_t i = 0;                  // kInt: the value; kList: what Python object it stands for
                                  // (kPlainList, kDictView, kRange, kIterator), since those
                                  // print, index and test differently
  double f = 0;
  std::string s;                  // kString; kFunction: the function or method name
  std::shared_ptr<List> list;     // kList; kFunction: the bound object (one element), if any
  std::shared_ptr<Dict> dict;     // kDict, kNamespace
  uint32_t depth = 0;             // lists and dicts: 1 + the deepest element (namespaces: 1)
  const Node* macro = nullptr;    // kFunction: a template macro (owned by its Template)

  static Value Undefined() { return {}; }
  static Value None() { Value v; v.kind = Kind::kNone; return v; }
  static Value Bool(bool x) { Value v; v.kind = Kind::kBool; v.b = x; return v; }
  static Value Int(int64_t x) { Value v; v.kind = Kind::kInt; v.i = x; return v; }
  static Value Float(double x) { Value v; v.kind = Kind::kFloat; v.f = x; return v; }
  static Value Str(std::string x) { Value v; v.kind = Kind::kString; v.s = std::move(x); return v; }
  static Value MakeList(List items) {
    Value v; v.kind = Kind::kList; v.depth = 1 + MaxDepth(items);
    v.list = std::make_shared<List>(std::move(items)); return v;
  }
  static Value MakeTuple(List items) { Value v = MakeList(std::move(items)); v.b = true; return v; }
  static Value MakeDict(Dict items) {
    Value v; v.kind = Kind::kDict;
    for (const auto& kv : items) v.depth = std::max(v.depth, kv.second.depth);
    ++v.depth;
    v.dict = std::make_shared<Dict>(std::move(items)); return v;
  }
  static uint32_t MaxDepth(const List& items) {
    uint32_t d = 0;
    for (const Value& x : items) d = std::max(d, x.depth);
    return d;
  }
};

struct Limits {
  size_t max_template_bytes;
  size_t max_output_bytes;     // also bounds every intermediate string and list
  int64_t max_loop_iterations; // summed over all loops of one render
  int max_nesting_depth;       // blocks, expressions and values
  int max_macro_depth;         // nested macro calls (macros may recurse)
};

class Template {
 public:
  static Result<Template> Parse(std::string_view source, const Limits& limits);

  // `vars` are the render variables (messages, add_generation_prompt, bos_token, ...).
  // `unix_time` is what strftime_now formats (UTC).
  Result<std::string> Render(const Dict& vars, int64_t unix_time) const;

  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  ~Template();

 private:
  Template();
  std::shared_ptr<const Node> root_;
  Limits limits_{};
};

}  // namespace tracemark::jinja
