"""`python -m mlship.monitoring generate [--check]`: (re)write the committed rules and dashboards.

The committed files are the rendering of the default configuration; ``--check`` exits 1 when they
differ from the generator's output (what the test suite asserts).
"""

from __future__ import annotations

import argparse
import sys

from mlship.monitoring import committed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlship.monitoring")
    sub = parser.add_subparsers(dest="command", required=True)
    generate = sub.add_parser(
        "generate", help="write mlship/monitoring/generated/ from the default configuration"
    )
    generate.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = committed.stale_files()
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path in committed.write():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
