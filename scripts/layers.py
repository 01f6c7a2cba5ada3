#!/usr/bin/env python3
"""Checks that rtvmm's layers only point down, and that no module includes itself back.

Every C file under the layer folders below may include the project's headers of its own layer
and of the layers it stands on, never one above or beside it. Modules (a .c with its .h, named by
the path without extension) may not include each other in a loop. Run by the build (meson.build:
custom target 'layers') so that a wrong include fails it, and by tests/unit/test_layers.sh.

Usage: layers.py [--root DIR] [--stamp FILE]
Prints one line per violation (FILE:LINE: includes "X": LAYER may not include LAYER2) and exits 1.
"""
import argparse
import os
import re
import sys

# Folder -> layer, and layer -> the layers it may include besides its own. Order is bottom-up.
LAYERS = {
    "base": "base",
    "vmm": "machine",
    "rt": "placement",
    "numa": "placement",
    "config": "plan",
    "api": "api",
    "app": "app",
    "dataplane": "dataplane",
}
MAY_INCLUDE = {
    "base": set(),
    "machine": {"base"},
    "placement": {"base"},
    "plan": {"base", "placement"},
    "api": {"base"},
    "app": {"base", "machine", "placement", "plan", "api"},
    "dataplane": {"base", "placement", "plan"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def sources(root):
    """Every .c and .h under the layer folders, as paths relative to root."""
    for top in sorted(LAYERS):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), root)


def layer_of(path):
    return LAYERS.get(path.split("/", 1)[0])


def check(root):
    """Returns the list of violation messages."""
    errors, edges = [], {}
    for path in sources(root):
        src_layer = layer_of(path)
        module = os.path.splitext(path)[0]
        with open(os.path.join(root, path), errors="replace") as f:
            for n, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                dst_layer = layer_of(target)
                if dst_layer is None:
                    continue
                if dst_layer != src_layer and dst_layer not in MAY_INCLUDE[src_layer]:
                    errors.append(f'{path}:{n}: includes "{target}": {src_layer} ({path.split("/")[0]}/) '
                                  f'may not include {dst_layer} ({target.split("/")[0]}/); it may include '
                                  f'{", ".join(sorted(MAY_INCLUDE[src_layer] | {src_layer}))}')
                dst_module = os.path.splitext(target)[0]
                if dst_module != module:
                    edges.setdefault(module, set()).add(dst_module)
    errors += [f"modules include each other in a loop: {' -> '.join(c)}" for c in cycles(edges)]
    return errors


def cycles(edges):
    """Each include loop among modules once, as a list that starts and ends with the same module."""
    found, seen_loops = [], set()
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                loop = stack[stack.index(nxt):]
                key = frozenset(loop)
                if key not in seen_loops:
                    seen_loops.add(key)
                    found.append(loop + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--stamp", help="file to write when the layers are sound (for the build)")
    args = ap.parse_args()
    errors = check(args.root)
    for e in errors:
        print(f"layers: {e}", file=sys.stderr)
    if errors:
        print(f"layers: {len(errors)} violation(s); the layer order is in scripts/layers.py and "
              "README.md (Architecture)", file=sys.stderr)
        return 1
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
