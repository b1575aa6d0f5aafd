"""`python -m export.fp16 <package>`: the FP16 preflight; exit 0 pass, 1 fail, 2 refused (edge/exit_status.py)."""

from __future__ import annotations

import argparse
import sys

from edge.exit_status import run_command, signals_interrupt
from edge.option_types import count, positive_float, seed
from export.workstation import require_workstation


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export.fp16",
                                description="FP16 preflight: write FP16 graphs into a package and measure their error.")
    p.add_argument("package", help="policy package directory")
    p.add_argument("--steps", type=count, default=8, help="policy steps to compare (default 8)")
    p.add_argument("--tolerance", type=positive_float, default=0.02,
                   help="pass threshold (default 0.02, normalised units)")
    p.add_argument("--seed", type=seed, default=0, help="seed for observations and samplers")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the preflight under the shared exit-status mapping."""
    args = build_parser().parse_args(argv)
    with signals_interrupt():  # SIGTERM/SIGHUP remove the staged fp16/ folder like Ctrl-C
        return run_command(lambda: _preflight(args))


def _preflight(args: argparse.Namespace) -> int:
    require_workstation("python -m export.fp16", ("onnx",))  # no torch: it compares graphs in ONNX Runtime
    from export.fp16.preflight import run_preflight

    return run_preflight(args.package, args.steps, args.tolerance, args.seed)


if __name__ == "__main__":
    sys.exit(main())
