#!/usr/bin/env python3
"""Writes tests/data/serve/bad_requests.jsonl: the bad-input suite for the OpenAI request path.
One JSON object per line: name, endpoint ("chat" or "completions"), body_b64 (raw bytes), status
(expected HTTP status), code (expected error code or null = any), server_only (true when only the
running server can decide, e.g. context length or model id). Deterministic; rerun after edits.
Model id placeholder MODEL is replaced by the tests with the served id."""
import base64
import json
import sys

M = "MODEL"
cases = []


def add(name, body, endpoint="chat", status=400, code=None, server_only=False):
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    cases.append({"name": name, "endpoint": endpoint, "body_b64": base64.b64encode(body).decode(),
                  "status": status, "code": code, "server_only": server_only})


def chat(**extra):
    d = {"model": M, "messages": [{"role": "user", "content": "hi"}]}
    d.update(extra)
    return json.dumps(d)


def comp(**extra):
    d = {"model": M, "prompt": "hi"}
    d.update(extra)
    return json.dumps(d)


# 1. Truncations of valid bodies at every byte.
for body, ep in ((chat(max_tokens=3, stop=["x"], stream=True), "chat"), (comp(max_tokens=2, seed=1), "completions")):
    for i in range(len(body)):
        add(f"truncated_{ep}_{i}", body[:i], ep)

# 2. Wrong types, every field.
wrong = {"int": 1, "float": 1.5, "str": "x", "bool": True, "list": [1], "obj": {"a": 1}}
fields = {
    "model": ["int", "float", "bool", "list", "obj"],
    "messages": ["int", "float", "str", "bool", "obj"],
    "max_tokens": ["float", "str", "bool", "list", "obj"],
    "max_completion_tokens": ["float", "str", "bool", "list", "obj"],
    "temperature": ["str", "bool", "list", "obj"],
    "top_p": ["str", "bool", "list", "obj"],
    "seed": ["float", "str", "bool", "list", "obj"],
    "stop": ["int", "float", "bool", "obj"],
    "n": ["float", "str", "bool", "list", "obj"],
    "user": ["int", "float", "bool", "list", "obj"],
    "stream": ["int", "float", "str", "list", "obj"],
}
for f, kinds in fields.items():
    for k in kinds:
        add(f"wrong_type_{f}_{k}", chat(**{f: wrong[k]}), code="invalid_type")
for k in ["int", "float", "bool", "obj"]:
    add(f"wrong_type_prompt_{k}", comp(prompt=wrong[k]), "completions", code="invalid_type")
add("wrong_type_stream_options", chat(stream=True, stream_options=1), code="invalid_type")
add("wrong_type_include_usage", chat(stream=True, stream_options={"include_usage": "yes"}), code="invalid_type")
add("wrong_type_message_item", json.dumps({"model": M, "messages": ["hi"]}), code="invalid_type")
add("wrong_type_role", json.dumps({"model": M, "messages": [{"role": 1, "content": "x"}]}), code="invalid_type")
add("wrong_type_content", json.dumps({"model": M, "messages": [{"role": "user", "content": 1}]}), code="invalid_type")
add("wrong_type_stop_item", chat(stop=["a", 2]), code="invalid_type")
add("wrong_type_prompt_item", comp(prompt=[1, "a"]), "completions", code="invalid_type")

# 3. Invalid UTF-8 in every string field.
bad_utf8 = {"overlong": b"\xc0\xaf", "surrogate": b"\xed\xa0\x80", "truncated": b"\xe2\x82", "five_byte": b"\xf8\x88\x80\x80\x80",
            "lone_cont": b"\x80", "ff": b"\xff", "above_max": b"\xf4\x90\x80\x80"}
for name, b in bad_utf8.items():
    add(f"utf8_model_{name}", b'{"model":"' + b + b'","messages":[{"role":"user","content":"x"}]}')
    add(f"utf8_content_{name}", b'{"model":"MODEL","messages":[{"role":"user","content":"a' + b + b'b"}]}')
    add(f"utf8_user_{name}", b'{"model":"MODEL","messages":[{"role":"user","content":"x"}],"user":"' + b + b'"}')
    add(f"utf8_stop_{name}", b'{"model":"MODEL","messages":[{"role":"user","content":"x"}],"stop":"' + b + b'"}')
    add(f"utf8_prompt_{name}", b'{"model":"MODEL","prompt":"' + b + b'"}', "completions")
    add(f"utf8_key_{name}", b'{"model":"MODEL","messages":[{"role":"user","content":"x"}],"' + b + b'":1}')

# 4. Deep nesting.
for depth in (33, 64, 1000, 20000):
    add(f"deep_unknown_field_{depth}", chat()[:-1] + ',"x":' + "[" * depth + "]" * depth + "}")
    add(f"deep_content_{depth}", '{"model":"MODEL","messages":[{"role":"user","content":' + "[" * depth + "]" * depth + "}]}")
    add(f"deep_objects_{depth}", chat()[:-1] + ',"x":' + '{"a":' * depth + "1" + "}" * depth + "}")

# 5. Huge and special numbers.
for name, num in {"1e400": "1e400", "neg_1e400": "-1e400", "big_int": "123456789012345678901234567890",
                  "1e19": "1e19", "nan": "NaN", "inf": "Infinity", "neg_inf": "-Infinity", "hex": "0x10",
                  "leading_zero": "012", "plus": "+1", "dot": ".5", "trailing_dot": "1."}.items():
    for f in ("max_tokens", "temperature", "seed"):
        add(f"number_{f}_{name}", chat()[:-1] + f',"{f}":{num}' + "}")

# 6. Out of range values.
for f, vals in {"max_tokens": [0, -1, 4097, 10**12], "max_completion_tokens": [0, -5, 5000],
                "temperature": [-0.01, 2.01, 100], "top_p": [-0.1, 1.01, 3], "n": [0, -1, 129]}.items():
    for v in vals:
        add(f"range_{f}_{v}", chat(**{f: v}), code="invalid_value")
add("n_above_limit_unsupported", chat(n=17), code="unsupported_value")
add("stop_five", chat(stop=["a", "b", "c", "d", "e"]), code="invalid_value")
add("stop_empty", chat(stop=""), code="invalid_value")
add("stop_too_long", chat(stop="x" * 257), code="invalid_value")
add("stream_options_without_stream", chat(stream_options={"include_usage": True}), code="invalid_value")
add("user_too_long", chat(user="u" * 257), code="invalid_value")
add("model_too_long", json.dumps({"model": "m" * 300, "messages": [{"role": "user", "content": "x"}]}), code="invalid_value")

# 7. Syntax.
for name, body in {"empty": "", "space": " ", "null": "null", "true": "true", "number": "1", "string": '"x"',
                   "array": "[]", "open": "{", "close": "}", "trailing_comma": chat()[:-1] + ",}",
                   "trailing_garbage": chat() + "x", "two_objects": chat() + chat(), "single_quotes": "{'model':'m'}",
                   "comment": "{/*c*/" + chat()[1:], "bom": "\ufeff" + chat(), "unquoted_key": "{model:1}",
                   "control_char": chat().replace("hi", "h\u0001i", 1).replace("\\u0001", "\x01"),
                   "nul_byte": chat().replace("hi", "h\x00i").replace("\\u0000", "\x00"),
                   "lone_surrogate_escape_unpaired_high": chat().replace("hi", "\\ud800"),
                   "bad_escape": chat().replace("hi", "\\q"), "missing_colon": '{"model" "m"}',
                   "duplicate_model": '{"model":"MODEL","model":"MODEL","messages":[{"role":"user","content":"x"}]}'}.items():
    add(f"syntax_{name}", body)

# 8. Message shapes.
add("messages_empty", json.dumps({"model": M, "messages": []}), code="empty_array")
add("messages_missing", json.dumps({"model": M}), code="missing_required_parameter")
add("model_missing", json.dumps({"messages": [{"role": "user", "content": "x"}]}), code="missing_required_parameter")
add("role_missing", json.dumps({"model": M, "messages": [{"content": "x"}]}), code="missing_required_parameter")
add("content_missing", json.dumps({"model": M, "messages": [{"role": "user"}]}), code="missing_required_parameter")
for role in ("wizard", "", "USER", "function"):
    add(f"role_{role or 'empty'}", json.dumps({"model": M, "messages": [{"role": role, "content": "x"}]}), code="invalid_value")
add("content_image_part", json.dumps({"model": M, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}), code="invalid_value")
add("content_part_no_text", json.dumps({"model": M, "messages": [{"role": "user", "content": [{"type": "text"}]}]}), code="missing_required_parameter")
add("content_part_not_object", json.dumps({"model": M, "messages": [{"role": "user", "content": ["x"]}]}), code="invalid_type")
add("too_many_messages", json.dumps({"model": M, "messages": [{"role": "user", "content": "x"}] * 257}), code="invalid_value")
add("prompt_missing", json.dumps({"model": M}), "completions", code="missing_required_parameter")
add("prompt_empty_array", comp(prompt=[]), "completions", code="empty_array")
add("prompt_two_strings", comp(prompt=["a", "b"]), "completions", code="invalid_value")
add("prompt_negative_token", comp(prompt=[-1]), "completions", code="invalid_value")
add("prompt_token_too_big", comp(prompt=[2**40]), "completions", code="invalid_value")
add("prompt_too_long_bytes", comp(prompt="a" * (256 * 1024 + 1)), "completions", code="context_length_exceeded")

# 9. Only the server can tell: context length, unknown token id, unknown model.
add("context_exceeded_words", comp(prompt="word " * 3000), "completions", code="context_length_exceeded", server_only=True)
add("context_exceeded_max_tokens", comp(max_tokens=4096), "completions", code="context_length_exceeded", server_only=True)
add("context_exceeded_chat", chat(messages=[{"role": "user", "content": "word " * 3000}]), code="context_length_exceeded", server_only=True)
add("token_id_not_in_vocab", comp(prompt=[10**9]), "completions", code="invalid_value", server_only=True)
add("unknown_model", json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}), status=404, code="model_not_found", server_only=True)

with open(sys.argv[1] if len(sys.argv) > 1 else "tests/data/serve/bad_requests.jsonl", "w") as f:
    for c in cases:
        f.write(json.dumps(c) + "\n")
print(len(cases), "cases", file=sys.stderr)
