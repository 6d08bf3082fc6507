#!/usr/bin/env python3
"""Fails when a module of web/src imports from a layer above its own.

Layers, top to bottom (docs/architecture.md, "Layers of the web crate"):
  boot            main, server, routes, config, seed
  api ws desk metrics
  webchat
  channels
  core            state, errors, db helpers, access checks, sessions, DTOs, files, limits, ...
A module may use its own layer and those below it. Paths are read from every `crate::…` in the
code (comments and strings excluded), `use crate::{a, b::c}` groups included.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "web" / "src"
LAYERS = [["boot"], ["api", "ws", "desk", "metrics"], ["webchat"], ["channels"], ["core"]]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def code_only(text: str) -> str:
    """The source without comments and string literals (a doc comment may name any module)."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def used_roots(code: str):
    """The first segment after `crate::` of every path, groups expanded."""
    roots = set()
    for m in re.finditer(r"crate::(\{[^;]*?\}|[a-z_][a-z0-9_]*)", code):
        item = m.group(1)
        if item.startswith("{"):
            depth, word, names = 0, "", []
            for ch in item[1:-1]:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                elif ch == "," and depth == 0:
                    names.append(word)
                    word = ""
                    continue
                word += ch
            names.append(word)
            roots.update(n.strip().split("::")[0] for n in names if n.strip())
        else:
            roots.add(item)
    return roots


def layer_of(path: pathlib.Path):
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".rs") if rel.parts else None


def main() -> int:
    wrong = []
    for path in sorted(ROOT.rglob("*.rs")):
        own = layer_of(path)
        if own not in RANK:
            continue  # lib.rs declares the layers
        for root in sorted(used_roots(code_only(path.read_text()))):
            if root in RANK and RANK[root] < RANK[own]:
                wrong.append(f"{path.relative_to(ROOT.parent.parent)}: {own} uses crate::{root}, a layer above it")
    for line in wrong:
        print(line, file=sys.stderr)
    if wrong:
        print(f"check-layers: {len(wrong)} import(s) point up; move the helper down into core/ (docs/architecture.md)", file=sys.stderr)
        return 1
    print("check-layers: every import points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
