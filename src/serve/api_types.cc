// OpenAI request validation and error bodies: see include/tracemark/serve/api_types.h.
#include "tracemark/serve/api_types.h"

#include <simdjson.h>

#include <nlohmann/json.hpp>
#include <set>

#include "tracemark/model/stop.h"

namespace tracemark::serve {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

const char* TypeName(element_type t) {
  switch (t) {
    case element_type::ARRAY: return "array";
    case element_type::OBJECT: return "object";
    case element_type::INT64:
    case element_type::UINT64: return "integer";
    case element_type::DOUBLE: return "number";
    case element_type::STRING: return "string";
    case element_type::BOOL: return "boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "unknown";
}

ApiError WrongType(const std::string& param, const char* expected, element e) {
  return BadRequest("Invalid type for '" + param + "': expected " + expected + ", but got " +
                        TypeName(e.type()) + " instead.",
                    param, "invalid_type");
}

ApiError OutOfRange(const std::string& param, const std::string& what) {
  return BadRequest("Invalid '" + param + "': " + what, param, "invalid_value");
}

// Reads a number as double (integers included).
bool AsNumber(element e, double* out) {
  switch (e.type()) {
    case element_type::INT64: *out = static_cast<double>(int64_t(e)); return true;
    case element_type::UINT64: *out = static_cast<double>(uint64_t(e)); return true;
    case element_type::DOUBLE: *out = double(e); return true;
    default: return false;
  }
}

// An integer, also accepting an integral double like 5.0 (JSON has one number type).
bool AsInteger(element e, int64_t* out) {
  switch (e.type()) {
    case element_type::INT64: *out = int64_t(e); return true;
    case element_type::UINT64: {
      const uint64_t v = uint64_t(e);
      if (v > static_cast<uint64_t>(INT64_MAX)) return false;
      *out = static_cast<int64_t>(v);
      return true;
    }
    case element_type::DOUBLE: {
      const double d = double(e);
      if (d != d || d < -9.0e18 || d > 9.0e18 || static_cast<double>(static_cast<int64_t>(d)) != d) return false;
      *out = static_cast<int64_t>(d);
      return true;
    }
    default: return false;
  }
}

std::optional<ApiError> ParseContent(element c, const std::string& param, std::string* out) {
  if (c.type() == element_type::STRING) {
    *out = std::string(std::string_view(c));
    return std::nullopt;
  }
  if (c.type() == element_type::NULL_VALUE) return std::nullopt;
  if (c.type() != element_type::ARRAY) return WrongType(param, "string or array of content parts", c);
  size_t i = 0;
  for (element part : simdjson::dom::array(c)) {
    const std::string pp = param + "[" + std::to_string(i++) + "]";
    if (part.type() != element_type::OBJECT) return WrongType(pp, "object", part);
    simdjson::dom::object po(part);
    element type, text;
    if (po["type"].get(type) || type.type() != element_type::STRING) {
      return BadRequest("Missing required parameter: '" + pp + ".type'.", pp + ".type", "missing_required_parameter");
    }
    if (std::string_view(type) != "text") {
      return BadRequest("Invalid value for '" + pp + ".type': only 'text' content parts are supported.",
                        pp + ".type", "invalid_value");
    }
    if (po["text"].get(text) || text.type() != element_type::STRING) {
      return BadRequest("Missing required parameter: '" + pp + ".text'.", pp + ".text", "missing_required_parameter");
    }
    out->append(std::string_view(text));
  }
  return std::nullopt;
}

}  // namespace

ApiError BadRequest(std::string message, std::optional<std::string> param, std::optional<std::string> code) {
  ApiError e;
  e.http_status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

std::string ErrorBody(const ApiError& e) {
  nlohmann::json j;
  j["error"]["message"] = e.message;
  j["error"]["type"] = e.type;
  j["error"]["param"] = e.param ? nlohmann::json(*e.param) : nlohmann::json();
  j["error"]["code"] = e.code ? nlohmann::json(*e.code) : nlohmann::json();
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ParseResult ParseCompletionRequest(std::string_view body, bool chat) {
  ParseResult out;
  auto fail = [&](ApiError e) {
    out.error = std::move(e);
    return out;
  };
  simdjson::dom::parser parser;
  if (parser.allocate(body.size() + 64, kMaxJsonDepth) != simdjson::SUCCESS) {
    return fail(BadRequest("We could not parse the JSON body of your request: out of memory."));
  }
  const simdjson::padded_string padded(body);
  element root;
  if (auto err = parser.parse(padded).get(root); err) {
    std::string why = simdjson::error_message(err);
    if (err == simdjson::DEPTH_ERROR) why = "nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return fail(BadRequest("We could not parse the JSON body of your request (" + why +
                           "). The OpenAI API expects a JSON payload."));
  }
  if (root.type() != element_type::OBJECT) {
    return fail(BadRequest("The request body must be a JSON object, but got " +
                           std::string(TypeName(root.type())) + "."));
  }
  simdjson::dom::object obj(root);
  {
    std::set<std::string_view> seen;
    for (auto field : obj) {
      if (!seen.insert(field.key).second) {
        return fail(BadRequest("Duplicate key '" + std::string(field.key) + "' in the request body.",
                               std::string(field.key), "duplicate_key"));
      }
    }
  }
  CompletionRequest r;
  r.chat = chat;
  element v;
  auto get = [&](const char* key) { return !obj[key].get(v) && v.type() != element_type::NULL_VALUE; };

  if (!get("model")) {
    return fail(BadRequest("you must provide a model parameter", "model", "missing_required_parameter"));
  }
  if (v.type() != element_type::STRING) return fail(WrongType("model", "string", v));
  r.model = std::string(std::string_view(v));
  if (r.model.size() > kMaxModelNameBytes) return fail(OutOfRange("model", "string too long"));

  size_t prompt_bytes = 0;
  if (chat) {
    if (!get("messages")) {
      return fail(BadRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter"));
    }
    if (v.type() != element_type::ARRAY) return fail(WrongType("messages", "array", v));
    simdjson::dom::array msgs(v);
    if (msgs.size() == 0) {
      return fail(BadRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                             "messages", "empty_array"));
    }
    if (msgs.size() > kMaxMessages) {
      return fail(OutOfRange("messages", "at most " + std::to_string(kMaxMessages) + " messages are accepted."));
    }
    size_t i = 0;
    for (element m : msgs) {
      const std::string p = "messages[" + std::to_string(i++) + "]";
      if (m.type() != element_type::OBJECT) return fail(WrongType(p, "object", m));
      simdjson::dom::object mo(m);
      element role, content;
      if (mo["role"].get(role)) {
        return fail(BadRequest("Missing required parameter: '" + p + ".role'.", p + ".role", "missing_required_parameter"));
      }
      if (role.type() != element_type::STRING) return fail(WrongType(p + ".role", "string", role));
      const std::string_view rv(role);
      if (rv != "system" && rv != "developer" && rv != "user" && rv != "assistant" && rv != "tool") {
        return fail(BadRequest("Invalid value: '" + std::string(rv) +
                                   "'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.",
                               p + ".role", "invalid_value"));
      }
      ChatMessage cm;
      cm.role = std::string(rv);
      if (mo["content"].get(content)) {
        if (rv != "assistant") {
          return fail(BadRequest("Missing required parameter: '" + p + ".content'.", p + ".content",
                                 "missing_required_parameter"));
        }
      } else if (auto e = ParseContent(content, p + ".content", &cm.content)) {
        return fail(*e);
      }
      prompt_bytes += cm.content.size();
      r.messages.push_back(std::move(cm));
    }
  } else {
    if (!get("prompt")) {
      return fail(BadRequest("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"));
    }
    if (v.type() == element_type::STRING) {
      r.prompt = std::string(std::string_view(v));
    } else if (v.type() == element_type::ARRAY) {
      simdjson::dom::array arr(v);
      if (arr.size() == 0) return fail(BadRequest("Invalid 'prompt': empty array.", "prompt", "empty_array"));
      element first = arr.at(0).value_unsafe();
      if (first.type() == element_type::STRING) {
        if (arr.size() != 1) {
          return fail(BadRequest("Invalid 'prompt': this server accepts one prompt per request.", "prompt", "invalid_value"));
        }
        r.prompt = std::string(std::string_view(first));
      } else {
        // Token ids, or an array of one array of token ids.
        simdjson::dom::array ids = arr;
        if (first.type() == element_type::ARRAY) {
          if (arr.size() != 1) {
            return fail(BadRequest("Invalid 'prompt': this server accepts one prompt per request.", "prompt", "invalid_value"));
          }
          ids = simdjson::dom::array(first);
        }
        if (ids.size() > kMaxPromptTokenIds) return fail(OutOfRange("prompt", "too many token ids."));
        for (element t : ids) {
          int64_t id = 0;
          if (!AsInteger(t, &id)) return fail(WrongType("prompt", "string or array of integers", t));
          if (id < 0 || id > INT32_MAX) return fail(OutOfRange("prompt", "token id out of range."));
          r.prompt_tokens.push_back(static_cast<int32_t>(id));
        }
        if (r.prompt_tokens.empty()) return fail(BadRequest("Invalid 'prompt': empty array.", "prompt", "empty_array"));
        r.prompt_is_tokens = true;
      }
    } else {
      return fail(WrongType("prompt", "string or array", v));
    }
    prompt_bytes = r.prompt.size();
  }
  if (prompt_bytes > kMaxPromptBytes) {
    return fail(BadRequest("The prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes.",
                           chat ? "messages" : "prompt", "context_length_exceeded"));
  }

  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    if (!get(key)) continue;
    int64_t n = 0;
    if (!AsInteger(v, &n)) return fail(WrongType(key, "integer", v));
    if (n < 1) return fail(OutOfRange(key, "integer below minimum value. Expected a value >= 1, but got " + std::to_string(n) + " instead."));
    if (n > kMaxCompletionTokensLimit) {
      return fail(OutOfRange(key, "integer above maximum value. Expected a value <= " +
                                      std::to_string(kMaxCompletionTokensLimit) + ", but got " + std::to_string(n) + " instead."));
    }
    if (!r.max_tokens) r.max_tokens = static_cast<int32_t>(n);
  }
  if (get("temperature")) {
    if (!AsNumber(v, &r.temperature)) return fail(WrongType("temperature", "number", v));
    if (!(r.temperature >= 0 && r.temperature <= 2)) {
      return fail(OutOfRange("temperature", "number out of range. Expected a value between 0 and 2."));
    }
  }
  if (get("top_p")) {
    if (!AsNumber(v, &r.top_p)) return fail(WrongType("top_p", "number", v));
    if (!(r.top_p >= 0 && r.top_p <= 1)) return fail(OutOfRange("top_p", "number out of range. Expected a value between 0 and 1."));
  }
  if (get("seed")) {
    int64_t s = 0;
    if (!AsInteger(v, &s)) return fail(WrongType("seed", "integer", v));
    r.seed = static_cast<uint64_t>(s);
  }
  if (get("stop")) {
    if (v.type() == element_type::STRING) {
      r.stop.emplace_back(std::string_view(v));
    } else if (v.type() == element_type::ARRAY) {
      for (element s : simdjson::dom::array(v)) {
        if (s.type() != element_type::STRING) return fail(WrongType("stop", "string or array of strings", s));
        r.stop.emplace_back(std::string_view(s));
      }
    } else {
      return fail(WrongType("stop", "string or array of strings", v));
    }
    if (r.stop.size() > kMaxStopStrings) {
      return fail(OutOfRange("stop", "at most " + std::to_string(kMaxStopStrings) + " stop sequences are accepted."));
    }
    for (const auto& s : r.stop) {
      if (s.empty() || s.size() > kMaxStopStringBytes) {
        return fail(OutOfRange("stop", "each stop sequence must be 1 to " + std::to_string(kMaxStopStringBytes) + " bytes."));
      }
    }
  }
  if (get("n")) {
    int64_t n = 0;
    if (!AsInteger(v, &n)) return fail(WrongType("n", "integer", v));
    if (n < 1 || n > 128) return fail(OutOfRange("n", "Expected a value between 1 and 128."));
    if (n > kMaxChoices) {
      return fail(BadRequest("At most n=" + std::to_string(kMaxChoices) + " choices are supported by this server.", "n",
                             "unsupported_value"));
    }
    r.n = static_cast<int32_t>(n);
  }
  if (get("user")) {
    if (v.type() != element_type::STRING) return fail(WrongType("user", "string", v));
    r.user = std::string(std::string_view(v));
    if (r.user.size() > kMaxUserBytes) return fail(OutOfRange("user", "string too long."));
  }
  if (get("stream")) {
    if (v.type() != element_type::BOOL) return fail(WrongType("stream", "boolean", v));
    r.stream = bool(v);
  }
  if (get("stream_options")) {
    if (v.type() != element_type::OBJECT) return fail(WrongType("stream_options", "object", v));
    if (!r.stream) {
      return fail(BadRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             "stream_options", "invalid_value"));
    }
    element iu;
    if (!simdjson::dom::object(v)["include_usage"].get(iu) && iu.type() != element_type::NULL_VALUE) {
      if (iu.type() != element_type::BOOL) return fail(WrongType("stream_options.include_usage", "boolean", iu));
      r.include_usage = bool(iu);
    }
  }
  out.request = std::move(r);
  return out;
}

}  // namespace tracemark::serve
