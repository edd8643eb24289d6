"""Share of busy samples per area, from py-spy raw profiles (``py-spy record --format raw``).

Each sample is put in one area: the innermost frame of its stack that matches a rule below decides
(so a log call made while signing counts as logging, the RSA work called from ``wsse/`` counts as
WS-Security, lxml's C parser called from ``xmlsafe.py`` as XML parsing). py-spy records only the
threads that are not idle, so the shares are of the gateway's busy time.

    .venv/bin/python -m tests.benchmarks.profile_breakdown /tmp/prof/*.txt
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("XML parsing (xmlsafe.parse_xml)", ("xmlsafe.py",)),
    ("logging", ("logging/", "unified_messaging/logs.py")),
    ("uuid", ("uuid.py",)),
    ("journal: sqlite-utils", ("sqlite_utils/",)),
    ("journal: SQLite (commit, insert)", ("unified_messaging/journal/",)),
    ("WS-Security: c14n, digests, RSA (mycarenet/wsse)", ("mycarenet/wsse/",)),
    ("zeep (upstream request/answer objects)", ("zeep/",)),
    ("Spyne (SOAP front)", ("spyne/",)),
    ("waitress (HTTP server)", ("waitress/",)),
    ("HTTP client (requests, urllib3, http.client)", ("requests/", "urllib3/", "http/client.py", "socket.py")),
    ("gateway's own code (other)", ("unified_messaging/",)),
)
OTHER = "other (stdlib, threading)"


def area_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for area, needles in AREAS:
            if any(needle in frame for needle in needles):
                return area
    return OTHER


def breakdown(paths: list[Path]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            if stack and number.isdigit():
                counts[area_of(stack)] += int(number)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    counts = breakdown(args.profiles)
    total = sum(counts.values()) or 1
    print(f"{total} busy samples in {len(args.profiles)} file(s)")
    for area, count in counts.most_common():
        print(f"| {area} | {count / total:.1%} |" if args.markdown else f"{count / total:7.1%}  {area}")


if __name__ == "__main__":
    main()
