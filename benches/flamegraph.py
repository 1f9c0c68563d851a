#!/usr/bin/env python3
"""Renders folded stacks (`frame;frame;frame COUNT` per line, as perf-summary.py writes them)
as a flame graph SVG: the root at the bottom, each frame as wide as its share of the samples,
children stacked above their parent, sorted by name so that equal stacks merge. Hover a frame
for its full name and share. No dependencies beyond Python 3.

usage: benches/flamegraph.py target/profile/perf.folded > benches/flamegraph.svg
       [--title TEXT] [--width PX] [--min-width PX]
"""

import argparse
import hashlib
import html
import sys

ROW = 16
FONT = 11
CHAR_WIDTH = FONT * 0.59


def build_tree(lines):
    root = {"name": "all", "count": 0, "children": {}}
    for line in lines:
        line = line.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        root["count"] += n
        node = root
        for frame in stack.split(";"):
            child = node["children"].get(frame)
            if child is None:
                child = {"name": frame, "count": 0, "children": {}}
                node["children"][frame] = child
            child["count"] += n
            node = child
    return root


def depth_of(node):
    return 1 + max((depth_of(c) for c in node["children"].values()), default=0)


def colour(name):
    """Warm colours, stable per name; ssobridge's own frames in a cooler tone to find them."""
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16)
    if "ssobridge" in name:
        return f"rgb({80 + h % 60},{150 + (h >> 8) % 60},{200 + (h >> 16) % 50})"
    if name.startswith("[k]"):
        return f"rgb({200 + h % 40},{120 + (h >> 8) % 50},{120 + (h >> 16) % 40})"
    return f"rgb({220 + h % 35},{100 + (h >> 8) % 110},{40 + (h >> 16) % 50})"


def render(root, title, width, min_width):
    total = root["count"] or 1
    levels = depth_of(root)
    height = (levels + 3) * ROW
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="{FONT}">',
        '<rect width="100%" height="100%" fill="#fdfdf6"/>',
        f'<text x="{width / 2}" y="{ROW}" text-anchor="middle" font-size="{FONT + 3}">'
        f"{html.escape(title)} ({total} samples)</text>",
    ]
    scale = (width - 20) / total

    def draw(node, x, level):
        w = node["count"] * scale
        if w < min_width:
            return
        y = height - (level + 1) * ROW - ROW
        share = 100.0 * node["count"] / total
        label = f"{node['name']} ({node['count']} samples, {share:.2f}%)"
        out.append(
            f'<g><title>{html.escape(label)}</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.1):.1f}" height="{ROW - 1}" '
            f'fill="{colour(node["name"])}" rx="1"/>'
        )
        chars = int((w - 4) / CHAR_WIDTH)
        if chars >= 3:
            text = node["name"] if len(node["name"]) <= chars else node["name"][: chars - 2] + ".."
            out.append(f'<text x="{x + 2:.1f}" y="{y + ROW - 4}">{html.escape(text)}</text>')
        out.append("</g>")
        offset = x
        for name in sorted(node["children"]):
            child = node["children"][name]
            draw(child, offset, level + 1)
            offset += child["count"] * scale

    draw(root, 10, 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folded")
    parser.add_argument("--title", default="ssobridge: where a login's CPU goes")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--min-width", type=float, default=0.3, help="frames narrower than this (px) are left out")
    args = parser.parse_args()
    with open(args.folded, encoding="utf-8", errors="replace") as f:
        root = build_tree(f)
    if root["count"] == 0:
        sys.exit(f"{args.folded}: no folded stacks")
    sys.stdout.write(render(root, args.title, args.width, args.min_width))


if __name__ == "__main__":
    main()
