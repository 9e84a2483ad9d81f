// Feature-by-feature comparison of the Jinja subset interpreter with Python Jinja2 as
// transformers configures it (vectors: tests/data/chat/jinja_features.json, made by
// tools/gen_chat_vectors.py).
#include "jinja.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tracemark/text/chat_template.h"

namespace tracemark::jinja {
namespace {

Value FromJson(const nlohmann::ordered_json& j) {
  if (j.is_null()) return Value::None();
  if (j.is_boolean()) return Value::Bool(j.get<bool>());
  if (j.is_number_integer()) return Value::Int(j.get<int64_t>());
  if (j.is_number()) return Value::Float(j.get<double>());
  if (j.is_string()) return Value::Str(j.get<std::string>());
  if (j.is_array()) {
    List items;
    for (const auto& e : j) items.push_back(FromJson(e));
    return Value::MakeList(std::move(items));
  }
  Dict d;
  for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), FromJson(it.value()));
  return Value::MakeDict(std::move(d));
}

Limits TestLimits() {
  return Limits{kMaxChatTemplateBytes, kMaxChatOutputBytes, kMaxChatLoopIterations, kMaxChatNestingDepth,
                kMaxChatMacroDepth};
}

TEST(JinjaFeaturesTest, MatchesPythonJinja2) {
  const std::string path = std::string(TM_SOURCE_DIR) + "/tests/data/chat/jinja_features.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  // ordered_json keeps the file's key order, which dict iteration and tojson depend on.
  const nlohmann::ordered_json data = nlohmann::ordered_json::parse(ss.str());
  int checked = 0;
  for (const auto& c : data["cases"]) {
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    Dict vars;
    for (auto it = c["vars"].begin(); it != c["vars"].end(); ++it) {
      vars.emplace_back(it.key(), FromJson(it.value()));
    }
    Result<Template> t = Template::Parse(c["template"].get<std::string>(), TestLimits());
    Result<std::string> out = t.ok() ? t->Render(vars, data["unix_time"].get<int64_t>()) : Result<std::string>(t.status());
    if (c.contains("unsupported")) {
      // Python renders this (c["python_renders"]); we must refuse, never approximate.
      EXPECT_FALSE(out.ok()) << "rendered " << *out << " where Python gives " << c["python_renders"];
      if (!out.ok()) {
        EXPECT_EQ(out.status().code(), StatusCode::kUnimplemented) << out.status().ToString();
      }
    } else if (c.contains("expected")) {
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    } else {
      EXPECT_FALSE(out.ok()) << "Python failed with " << c["error"] << " but we rendered: " << *out;
      if (!out.ok()) {
        EXPECT_NE(out.status().code(), StatusCode::kInternal);
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 60);
}

}  // namespace
}  // namespace tracemark::jinja
