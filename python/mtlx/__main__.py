"""Command line entry point: ``python -m mtlx demo``."""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mtlx", description="mtlx: regularized multi-task learning")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="compare single-task, pooled and multi-task fits on the school data",
                          description="Example: python -m mtlx demo --splits 3")
    demo.add_argument("--splits", type=int, default=10, choices=range(1, 11), metavar="N",
                      help="number of the 10 standard splits to run (default 10)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        run(args.splits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
