"""``python -m benchmarks`` (``make bench``): how fast the runbook is, side by side with the bare tools.

Options:
  --items 1,3,5   only these items (default: all six)
  --quick         a few-second run on recorded data (what tests/test_benchmarks.py runs)
  --out DIR       where results.md and results.json go (default: benchmarks/)
  --keep          keep the private state/outputs folder (printed) for inspection
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import harness, report, suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="1,2,3,4,5,6", help="comma-separated item numbers (1-6)")
    parser.add_argument("--quick", action="store_true", help="a few seconds, on recorded data (no sandbox)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder for results.md/json")
    parser.add_argument("--keep", action="store_true", help="keep the private state folder")
    args = parser.parse_args(argv)
    try:
        selected = {int(x) for x in args.items.split(",") if x.strip()}
    except ValueError:
        parser.error("--items takes numbers, e.g. 1,3,5")
    if not selected <= set(suite.TITLES):
        parser.error(f"--items: choose from {', '.join(map(str, suite.TITLES))}")

    started = time.monotonic()
    machine = harness.machine()
    with harness.private_environment(keep=args.keep) as folders:
        if args.keep:
            print(f"private state: {folders['root']}", flush=True)

        def say(message: str) -> None:
            print(f"[{time.monotonic() - started:6.0f}s] {message}", flush=True)

        if args.quick:
            items = suite.quick_run(folders["work"])
            mode = "quick"
        else:
            items = suite.run(selected, folders["work"], progress=say)
            mode = "items " + ",".join(map(str, sorted(selected)))
    wall = time.monotonic() - started
    machine["load_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    print()
    print(report.text_table(report.summary_rows(items), report.COLUMNS, width=70))
    paths = report.write(items, machine, wall, args.out, mode)
    print(f"\nwhole run {wall / 60:.1f} min; results: {paths['markdown']} and {paths['json']}")
    return 1 if any(i.error for i in items) else 0


if __name__ == "__main__":
    sys.exit(main())
