#!/usr/bin/env python3
"""Folds `perf script` output into stacks and draws an SVG flame graph.

    perf script -i perf.data | swift demangle --simplified | Benchmarks/flamegraph.py > flame.svg

A small stand-in for the usual flamegraph tools (none is packaged for Debian here): one frame
per box, width proportional to samples, hover for the full name and share.
"""
import html
import sys
from collections import defaultdict


def fold(lines):
    stacks = defaultdict(int)
    frames = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                stacks[";".join(reversed(frames))] += 1
            frames = []
            continue
        if line[0] not in " \t":  # a sample header line: "comm pid time: event:"
            frames = []
            continue
        parts = line.strip().split(" ", 1)
        symbol = parts[1] if len(parts) > 1 else parts[0]
        symbol = symbol.rsplit(" (", 1)[0]  # drop "(dso)"
        frames.append(symbol.split("+0x")[0] or "[unknown]")
    if frames:
        stacks[";".join(reversed(frames))] += 1
    return stacks


def tree(stacks):
    root = {"name": "all", "value": 0, "children": {}}
    for stack, count in stacks.items():
        node = root
        node["value"] += count
        for frame in stack.split(";"):
            node = node["children"].setdefault(frame, {"name": frame, "value": 0, "children": {}})
            node["value"] += count
    return root


def color(name):
    kernel = name.startswith(("__", "do_", "tcp_", "ip_", "sock", "sys_", "entry_", "ep_", "skb", "net"))
    seed = sum(map(ord, name)) % 60
    return f"rgb({200 + seed % 55},{80 + seed},{40})" if not kernel else f"rgb({230},{150 + seed},{60})"


def render(root, width=1600, row=16):
    boxes = []
    depth_max = [0]

    def walk(node, x, depth):
        w = node["value"] / root["value"] * width
        if w < 0.3:
            return
        depth_max[0] = max(depth_max[0], depth)
        boxes.append((x, depth, w, node["name"], node["value"]))
        child_x = x
        for child in sorted(node["children"].values(), key=lambda c: c["name"]):
            walk(child, child_x, depth + 1)
            child_x += child["value"] / root["value"] * width

    walk(root, 0, 0)
    height = (depth_max[0] + 2) * row
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">']
    for x, depth, w, name, value in boxes:
        y = height - (depth + 1) * row
        share = 100 * value / root["value"]
        label = html.escape(name if len(name) * 7 < w else name[: max(0, int(w / 7) - 2)] + ".." if w > 20 else "")
        out.append(f'<g><title>{html.escape(name)} ({value} samples, {share:.1f}%)</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{color(name)}"/>'
                   f'<text x="{x + 2:.1f}" y="{y + row - 4}">{label}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


if __name__ == "__main__":
    stacks = fold(sys.stdin)
    if not stacks:
        sys.exit("no samples in the input")
    print(render(tree(stacks)))
