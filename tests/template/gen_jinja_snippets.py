#!/usr/bin/env python3
"""Regenerates jinja_snippets.json: each snippet of snippets (below) rendered by jinja2 the way
Hugging Face's apply_chat_template configures it (trim_blocks, lstrip_blocks, loopcontrols,
ImmutableSandboxedEnvironment, tojson without ASCII escaping, raise_exception, strftime_now at
2026-01-15 12:00:00). Needs python3 with jinja2; run from this directory."""
import datetime
import json
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime.datetime(2026, 1, 15, 12, 0, 0).strftime(f)
    return env


def main():
    snippets = {}
    exec(open("jinja_snippets.py").read(), snippets)
    out = []
    for source, context in snippets["S"]:
        entry = {"template": source, "context": context}
        try:
            entry["expected"] = make_env().from_string(source).render(**context)
        except Exception as e:  # the case then expects an error
            entry["error"] = f"{type(e).__name__}: {e}"
        out.append(entry)
    with open("jinja_snippets.json", "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
