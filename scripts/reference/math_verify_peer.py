"""Python math-verify as bench:grade's peer: grades (gold, response) pairs in one generic protocol.

Both sides go through math-verify's default extraction (`parse` with its default LaTeX + plain
expression configs), then `verify` with its defaults: one configuration for every case, as a
user would call it. A null gold asks whether nothing is extracted (`parse` returns no candidate).
Reads a JSON file `{"pairs": [[gold, response], ...], "repeats": N}` and prints one JSON object:
the verdicts of the first pass, and checks/s of each pass (median is the caller's). Gold parses
are cached across pairs, as questa caches its gold answers.

    python scripts/reference/math_verify_peer.py PAIRS.json
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from math_verify import parse, verify


def grade_all(pairs: list[tuple[str | None, str]]) -> tuple[list[bool], list[float], float]:
    """verdicts, per-check seconds and total seconds of one pass over the pairs"""
    gold_cache: dict[str, Any] = {}
    verdicts: list[bool] = []
    seconds: list[float] = []
    start = time.perf_counter()
    for gold, response in pairs:
        t = time.perf_counter()
        if gold is None:
            verdicts.append(len(parse(response)) == 0)
        else:
            parsed_gold = gold_cache.get(gold)
            if parsed_gold is None:
                parsed_gold = gold_cache[gold] = parse(gold)
            verdicts.append(bool(verify(parsed_gold, parse(response))))
        seconds.append(time.perf_counter() - t)
    return verdicts, seconds, time.perf_counter() - start


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    # math-verify logs every unparsable candidate; the bench wants only its JSON on stdout
    logging.disable(logging.CRITICAL)
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    pairs = [(None if g is None else str(g), str(r)) for g, r in request["pairs"]]
    repeats = max(1, int(request.get("repeats", 1)))
    verdicts: list[bool] = []
    rates: list[float] = []
    slowest = 0.0
    for r in range(repeats):
        got, seconds, total = grade_all(pairs)
        if r == 0:
            verdicts = got
        rates.append(len(pairs) / total if total > 0 else 0.0)
        slowest = max([slowest, *seconds])
    out = {
        "math_verify": version("math-verify"),
        "python": platform.python_version(),
        "verdicts": verdicts,
        "checks_per_s": rates,
        "slowest_check_s": slowest,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
