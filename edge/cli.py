"""`edge` command line: one sub-command per module in edge/commands (each has add_parser and run)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys

import edge.commands
from firmware_bridge.safety import SafetyTripped


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Run exported robot policies without PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(edge.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"edge.commands.{info.name}")
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 refused before anything moved (CLIError), 3 a run ended by a safety reaction,
    128 + signal number when interrupted (130 for Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SafetyTripped as exc:
        print(f"safety reaction: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as exc:
        print("interrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
