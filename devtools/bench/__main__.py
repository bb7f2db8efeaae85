"""`make bench`: every benchmark in turn; each prints its figures and writes JSON/PNG under <state>/bench/.

python -m devtools.bench [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence

from rich.console import Console

# module under devtools.bench -> arguments for its main() in full / quick mode
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "service": ([], ["--quick"]),
    "canary_detection": ([], ["--quick"]),
    "canary_traffic": ([], ["--quick"]),
    "drift_detection": ([], ["--quick"]),
    "pulumi_render": ([], []),
    "feedback": ([], ["--quick"]),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these")
    args = parser.parse_args(argv)
    console = Console()
    for name in args.only or BENCHES:
        full, quick = BENCHES[name]
        console.rule(f"bench: {name}")
        module = importlib.import_module(f"devtools.bench.{name}")
        started = time.monotonic()
        saved = sys.argv
        sys.argv = [f"devtools.bench.{name}", *(quick if args.quick else full)]
        try:
            module.main(sys.argv[1:]) if name != "pulumi_render" else module.main()
        finally:
            sys.argv = saved
        console.print(f"[dim]{name}: {time.monotonic() - started:.0f} s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
