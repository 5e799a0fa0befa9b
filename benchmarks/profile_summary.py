"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) as text tables.

``python -m benchmarks.profile_summary PROFILE.raw [--top 30] [--filter sigmasight_assets]``

Prints the functions with the most *inclusive* samples (time under them), the most *self* samples
(time in them), and the inclusive share of the functions whose file path contains ``--filter``
(default: the project's own code), so "what dominates" reads without a flame-graph viewer.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _key(frame: str, with_line: bool = False) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "sigmasight_assets/", "benchmarks/", "lib/python3"):
        if marker in path:
            path = path[path.index(marker):].replace("site-packages/", "")
            break
    return f"{m['func']} ({path}{':' + m['line'] if with_line and m['line'] else ''})"


def summarise(path: Path, top: int = 30, needle: str = "sigmasight_assets/") -> str:
    inclusive, self_, own = Counter(), Counter(), Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        keys = [_key(f) for f in frames]
        for k in set(keys):
            inclusive[k] += n
        if keys:
            self_[keys[-1]] += n
        for k in set(k for k, f in zip(keys, frames) if needle in f):
            own[k] += n
    if not total:
        return "no samples"

    def table(counter: Counter, title: str) -> list[str]:
        out = [title, f"{'share':>7}  {'samples':>8}  function"]
        for k, n in counter.most_common(top):
            out.append(f"{100 * n / total:6.1f}%  {n:8d}  {k}")
        return out + [""]

    lines = [f"{path}: {total} samples", ""]
    lines += table(own, f"inclusive, functions in files matching {needle!r}")
    lines += table(self_, "self (leaf frames)")
    lines += table(inclusive, "inclusive, all functions")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--filter", default="sigmasight_assets/")
    args = p.parse_args(argv)
    print(summarise(args.profile, args.top, args.filter))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
