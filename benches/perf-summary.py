#!/usr/bin/env python3
"""Summarizes a `perf script` dump of a profiled ssobridge: folded stacks and top symbols.

usage: perf script -i perf.data --no-inline | benches/perf-summary.py [--folded out.folded] [--top N]

Reads perf's call chains (recorded with `perf record --call-graph dwarf`, see
benches/README.md) and prints, as shares of all samples:
  - self time by kind of code (the leaf frame's library: RSA/EC crypto, kernel, malloc, ...),
  - the top functions by self time (the leaf frame),
  - the top ssobridge functions and handlers by inclusive time (anywhere on the stack),
  - the top functions of any crate by inclusive time.
--folded writes `frame;frame;...;leaf count` lines, the input of any flame graph tool
(inferno-flamegraph, flamegraph.pl), if one is at hand.
"""
import argparse
import collections
import re
import sys

OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def parse(lines):
    """Yields each sample's frames, root first."""
    frames = []
    in_sample = False
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if in_sample and frames:
                yield list(reversed(frames))
            frames, in_sample = [], False
            continue
        if not line.startswith(("\t", " ")):
            # A sample's header: comm pid [cpu] time: period event:
            if in_sample and frames:
                yield list(reversed(frames))
            frames, in_sample = [], True
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = ""
        if rest.endswith(")") and " (" in rest:
            rest, dso = rest.rsplit(" (", 1)
            dso = dso[:-1]
        symbol = OFFSET.sub("", rest.strip())
        if symbol == "[unknown]":
            symbol = f"[unknown {dso.rsplit('/', 1)[-1]}]"
        if dso.startswith("[kernel"):
            symbol = f"[k] {symbol}"
        frames.append(symbol)
    if in_sample and frames:
        yield list(reversed(frames))


KINDS = [
    ("RSA (bn_*/rsa_* of aws-lc)", re.compile(r"aws_lc.*(bn_|rsa|RSA)|mulx4x|sqrx8x|bn_power|__bn_")),
    ("EC P-256 (ecp_nistz256/ECDSA of aws-lc)", re.compile(r"nistz256|ecdsa|ECDSA|ec_|EC_|beeu_mod|p256")),
    ("Ed25519 (edwards25519, SHA-512 of aws-lc)", re.compile(r"edwards25519|ed25519|ED25519|sha512")),
    ("other aws-lc (SHA-256, RNG, ...)", re.compile(r"aws_lc|sha256|SHA256|CRYPTO_")),
    ("kernel (TCP, syscalls, scheduler)", re.compile(r"^\[k\] ")),
    ("malloc/free/realloc", re.compile(r"malloc|free|realloc|_int_|calloc|tcache|arena")),
    ("memcpy/memmove/memset/strlen", re.compile(r"mem(cpy|move|set|cmp)|strlen|__memmove")),
    ("serde_json / serde", re.compile(r"serde")),
    ("hyper / http / httparse (HTTP/1 parsing and writing)", re.compile(r"hyper|httparse|^http::|<http::")),
    ("tokio / mio (runtime, I/O driver)", re.compile(r"tokio|mio::")),
    ("poem (routing, request/response)", re.compile(r"poem")),
    ("reqwest (the broker's client to the simulator)", re.compile(r"reqwest")),
    ("tracing / tracing-subscriber", re.compile(r"tracing")),
    ("url / form_urlencoded / idna / percent-encoding", re.compile(r"url|form_urlencoded|idna|percent_encoding")),
    ("core::fmt / alloc (formatting, String, Vec)", re.compile(r"core::fmt|alloc::|<alloc|core::str")),
    ("ssobridge", re.compile(r"ssobridge")),
]


# Each sample goes to the first area one of its frames matches (so the shares add up to 100%).
AREAS = [
    ("RSA-2048 signature of the ID token (/token)", re.compile(r"rsa_default_private_transform|rsa::key::KeyPair::sign")),
    ("check of the upstream ID token (/callback: its signature, with its JSON)", re.compile(r"upstream::id_token::Verifier")),
    ("demo simulator's handlers (its EdDSA signature included; demo only)", re.compile(r"demo::simulator")),
    ("broker's HTTP client to the upstream (reqwest, hyper client)", re.compile(r"reqwest|hyper::client|hyper_util::client")),
    ("/token, the rest (client auth, store, claims, JSON)", re.compile(r"oidc::token::|login::redeem::|login::client_auth::")),
    ("/callback, the rest (flow, identity, code, store)", re.compile(r"oidc::callback::|login::finish::|upstream::")),
    ("/authorize (validation, routing, flow, redirect URL)", re.compile(r"oidc::authorize::|login::begin::|routing::")),
    ("/userinfo", re.compile(r"oidc::userinfo|login::userinfo")),
    ("rate limiter and request log (protect, telemetry)", re.compile(r"protect::|limiter::|telemetry::|RequestLog")),
    ("other ssobridge code", re.compile(r"ssobridge::")),
    ("HTTP serving: hyper, poem, tokio, kernel TCP (per request)", re.compile(r".")),
]


def area_of(stack):
    for name, pattern in AREAS:
        if any(pattern.search(frame) for frame in stack):
            return name
    return "other"


def kind_of(leaf):
    for name, pattern in KINDS:
        if pattern.search(leaf):
            return name
    return "other"


def short(symbol, width=110):
    return symbol if len(symbol) <= width else symbol[: width - 1] + "…"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="perf script output (default: stdin)")
    parser.add_argument("--folded", help="write folded stacks here")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    source = open(args.input, encoding="utf-8", errors="replace") if args.input else sys.stdin

    total = 0
    self_counts = collections.Counter()
    inclusive = collections.Counter()
    kinds = collections.Counter()
    areas = collections.Counter()
    folded = collections.Counter()
    for stack in parse(source):
        total += 1
        leaf = stack[-1]
        self_counts[leaf] += 1
        kinds[kind_of(leaf)] += 1
        areas[area_of(stack)] += 1
        for symbol in set(stack):
            inclusive[symbol] += 1
        if args.folded:
            folded[";".join(s.replace(";", ":") for s in stack)] += 1
    if total == 0:
        sys.exit("no samples: was the data recorded with --call-graph, and is this `perf script` output?")

    pct = lambda n: f"{100.0 * n / total:6.2f}%"  # noqa: E731
    print(f"{total} samples\n")
    print("Where the time goes (each sample in the first area on its stack):")
    for name, n in areas.most_common():
        print(f"  {pct(n)}  {name}")
    print()
    print("Self time by kind of code (leaf frame):")
    for name, n in kinds.most_common():
        print(f"  {pct(n)}  {name}")
    print(f"\nTop {args.top} functions by self time:")
    for symbol, n in self_counts.most_common(args.top):
        print(f"  {pct(n)}  {short(symbol)}")
    print(f"\nTop {args.top} ssobridge functions by inclusive time (the function and what it calls):")
    ours = [(s, n) for s, n in inclusive.items() if "ssobridge" in s]
    for symbol, n in sorted(ours, key=lambda x: -x[1])[: args.top]:
        print(f"  {pct(n)}  {short(symbol)}")
    print(f"\nTop {args.top} functions by inclusive time (the runtime's, hyper's and poem's frames left out):")
    boring = re.compile(
        r"^(\[unknown|\[k\] (entry_|do_syscall)|_start|__libc_start|main$|std::|<std::|core::ops|tokio::runtime|"
        r"<tokio::runtime|clone3?$|start_thread|__clone|0x|hyper::proto|<hyper|<hyper_util|poem::server|<poem::|"
        r"<dyn poem|<alloc::boxed::Box<T> as poem|<core::(future|panic)|<tracing::instrument)"
    )
    shown = 0
    for symbol, n in inclusive.most_common():
        if boring.search(symbol) or n == total:
            continue
        print(f"  {pct(n)}  {short(symbol)}")
        shown += 1
        if shown == args.top:
            break
    if args.folded:
        with open(args.folded, "w", encoding="utf-8") as out:
            for stack, n in sorted(folded.items()):
                out.write(f"{stack} {n}\n")
        print(f"\nfolded stacks: {args.folded} ({len(folded)} distinct)")


if __name__ == "__main__":
    main()
