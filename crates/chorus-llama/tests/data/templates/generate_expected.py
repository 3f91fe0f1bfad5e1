#!/usr/bin/env python3
"""Renders every case of cases.json with Python jinja2 the way Hugging Face transformers'
apply_chat_template does, and writes the results under expected/.

Environment (transformers/utils/chat_template_utils.py): ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and the loopcontrols extension; the tojson filter is json.dumps
with ensure_ascii=False by default; raise_exception raises TemplateError(message);
strftime_now formats datetime.now().

Messages get the normalisation chorus applies before rendering (the one OpenAI-compatible
servers apply): text content parts joined with "", null-valued keys other than `content`
dropped, and, for templates that need them as objects (probed like llama.cpp's minja caps
detection), tool-call `arguments` strings that hold a JSON object parsed into that object
("" becomes {}). `tools` is passed only when the case has tools.

    python3 generate_expected.py     # needs jinja2 >= 3.1
"""
import json
import os
from datetime import datetime

import jinja2
from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def normalise(messages, object_arguments):
    out = []
    for message in messages:
        m = {}
        for key, value in message.items():
            if value is None and key != "content":
                continue
            if key == "content" and isinstance(value, list):
                value = "".join(part["text"] for part in value)
            if key == "tool_calls" and object_arguments and isinstance(value, list):
                calls = []
                for call in value:
                    call = json.loads(json.dumps(call))
                    fn = call.get("function")
                    if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                        if not fn["arguments"].strip():
                            fn["arguments"] = {}
                            calls.append(call)
                            continue
                        try:
                            parsed = json.loads(fn["arguments"])
                        except ValueError:
                            parsed = None
                        if isinstance(parsed, dict):
                            fn["arguments"] = parsed
                    calls.append(call)
                value = calls
            m[key] = value
        out.append(m)
    return out


def requires_object_arguments(template, bos_token, eos_token):
    """Renders a tool call with string, then object arguments; strings are kept if they
    print as is, objects are used otherwise."""
    args = {"argument_needle": "print('Hello, World!')"}

    def renders_needle(arguments):
        messages = [
            {"role": "user", "content": "Hey"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1___", "type": "function", "function": {"name": "ipython", "arguments": arguments}}]},
        ]
        try:
            text = template.render(messages=messages, add_generation_prompt=False,
                                   bos_token=bos_token, eos_token=eos_token)
        except Exception:
            return False
        return '"argument_needle":' in text or "'argument_needle':" in text

    return not renders_needle(json.dumps(args))


def main():
    with open(os.path.join(HERE, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    env = environment()
    for case in cases:
        with open(os.path.join(HERE, case["template"]), encoding="utf-8") as f:
            template = env.from_string(f.read())
        ctx = dict(case.get("extra", {}))
        object_arguments = requires_object_arguments(template, case["bos_token"], case["eos_token"])
        ctx.update(
            messages=normalise(case["messages"], object_arguments),
            add_generation_prompt=case["add_generation_prompt"],
            bos_token=case["bos_token"],
            eos_token=case["eos_token"],
        )
        if case.get("tools") is not None:
            ctx["tools"] = case["tools"]
        name = case["name"]
        try:
            rendered, suffix = template.render(**ctx), ".txt"
        except TemplateError as e:
            rendered, suffix = str(e), ".error.txt"
        for stale in (".txt", ".error.txt"):
            path = os.path.join(HERE, "expected", name + stale)
            if os.path.exists(path):
                os.remove(path)
        with open(os.path.join(HERE, "expected", name + suffix), "w", encoding="utf-8", newline="") as f:
            f.write(rendered)
        print(f"{name}{suffix}: {len(rendered)} chars")


if __name__ == "__main__":
    main()
