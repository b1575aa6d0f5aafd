"""`edge` command line: one sub-command per module in edge/commands (each has add_parser and run).

Errors reach the user as one line and an exit status from edge/exit_status.py, the mapping every
command line shares; commands just raise. SIGTERM and SIGHUP interrupt every command as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import edge.commands
from edge.exit_status import run_command, signals_interrupt
from edge.option_types import check_modes

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Run exported robot policies without PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(edge.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"edge.commands.{info.name}")
        if hasattr(module, "add_parser"):  # a helper module, not a command
            module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status comes from edge/exit_status.py. SIGTERM and SIGHUP stop it as Ctrl-C does."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_modes(parser, args)
    with signals_interrupt():
        return run_command(lambda: args._run(args))


if __name__ == "__main__":
    sys.exit(main())
