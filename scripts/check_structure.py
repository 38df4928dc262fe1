#!/usr/bin/env python3
"""Structural checks that CI runs (.ci/run): no import circle between the modules of any crate,
and no function longer than 80 lines in the crates that hold the training loop and the exporter.

  python3 scripts/check_structure.py        # exit 1 and a list of what is wrong

A module's imports are its `use crate::...` and `super::...` lines (and `crate::x::` paths in
code); a circle is a cycle in that graph, e.g. config -> net -> error -> config. A function's
length runs from its `fn` line to its closing brace, tests excluded.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRATES = os.path.join(ROOT, "crates")
LONG_FUNCTION_CRATES = ("train", "export")
MAX_LINES = 80


def modules(src):
    """{module path: file} of a crate's src/ (lib.rs and main.rs are the root, '')."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs") or "bin" in os.path.relpath(dirpath, src).split(os.sep):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] in ("lib", "main"):
                continue
            if rel[-1] == "mod":
                rel = rel[:-1]
            out["::".join(rel)] = os.path.join(dirpath, f)
    return out


def code_without_tests(text):
    """The text before a `#[cfg(test)]` module."""
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def imports(path, module, known):
    text = re.sub(r"//[^\n]*", "", code_without_tests(open(path).read()))
    parent = module.rsplit("::", 1)[0] if "::" in module else ""
    found = set()
    for m in re.finditer(r"\b(crate|super)::([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)", text):
        base = "" if m.group(1) == "crate" else parent
        parts = m.group(2).split("::")
        # The longest known module the path names.
        for n in range(len(parts), 0, -1):
            target = "::".join(([base] if base else []) + parts[:n])
            if target in known and target != module and not module.startswith(target + "::"):
                found.add(target)
                break
        # `use crate::{a, b}` and `use super::{a, b}` name several.
    for m in re.finditer(r"\b(crate|super)::\{([^}]*)\}", text):
        base = "" if m.group(1) == "crate" else parent
        for item in m.group(2).split(","):
            head = item.strip().split("::")[0]
            target = f"{base}::{head}" if base else head
            if target in known and target != module:
                found.add(target)
    return found


def cycles(graph):
    """Every elementary cycle's first appearance, found by depth-first search."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def long_functions(path):
    lines = code_without_tests(open(path).read()).split("\n")
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)", line)
        if not m:
            continue
        indent = len(m.group(1))
        for j in range(i + 1, len(lines)):
            if lines[j].startswith(" " * indent + "}") and len(lines[j]) - len(lines[j].lstrip()) == indent:
                if j - i + 1 > MAX_LINES:
                    out.append((m.group(6), i + 1, j - i + 1))
                break
            if j > i and lines[i].rstrip().endswith(";"):
                break
    return out


def main():
    problems = []
    for crate in sorted(os.listdir(CRATES)):
        src = os.path.join(CRATES, crate, "src")
        if not os.path.isdir(src):
            continue
        mods = modules(src)
        graph = {m: imports(p, m, mods) for m, p in mods.items()}
        for cycle in cycles(graph):
            problems.append(f"{crate}: import circle " + " -> ".join(cycle))
        if crate in LONG_FUNCTION_CRATES:
            for dirpath, _, files in os.walk(src):
                for f in files:
                    if f.endswith(".rs"):
                        p = os.path.join(dirpath, f)
                        for name, line, n in long_functions(p):
                            problems.append(f"{os.path.relpath(p, ROOT)}:{line}: fn {name} is {n} lines (> {MAX_LINES})")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("no import circle; no function over", MAX_LINES, "lines in", ", ".join(LONG_FUNCTION_CRATES))


if __name__ == "__main__":
    main()
