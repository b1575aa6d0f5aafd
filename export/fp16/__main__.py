"""`python -m export.fp16 <package>`: the FP16 preflight; exit 0 pass, 1 fail, 2 refused (edge/exit_status.py)."""

from __future__ import annotations

import argparse
import sys

from edge.exit_status import run_command
from export.fp16.preflight import run_preflight


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the preflight under the shared exit-status mapping."""
    p = argparse.ArgumentParser(prog="python -m export.fp16",
                                description="FP16 preflight: write FP16 graphs into a package and measure their error.")
    p.add_argument("package", help="policy package directory")
    p.add_argument("--steps", type=int, default=8, help="policy steps to compare (default 8)")
    p.add_argument("--tolerance", type=float, default=0.02, help="pass threshold (default 0.02, normalised units)")
    p.add_argument("--seed", type=int, default=0, help="seed for observations and samplers")
    args = p.parse_args(argv)
    return run_command(lambda: run_preflight(args.package, args.steps, args.tolerance, args.seed))


if __name__ == "__main__":
    sys.exit(main())
