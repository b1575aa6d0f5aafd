"""`edge migrate <package> [...]`: rewrite older packages' manifest.json at the current version (graphs unchanged)."""

from __future__ import annotations

import argparse

from edge.runtime.migrate import migrate_package
from edge.runtime.package import MANIFEST_VERSION


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("migrate", help="bring an older policy package's manifest to the current version",
                       description="Rewrites manifest.json in place (atomically) after checking that the result "
                                   "loads; graphs and validation samples are not touched.")
    p.add_argument("packages", nargs="+", help="policy package directories")
    return p


def run(args: argparse.Namespace) -> int:
    for path in args.packages:
        version = migrate_package(path)
        print(f"{path}: manifest version {MANIFEST_VERSION}" if version == MANIFEST_VERSION else
              f"{path}: manifest version {version} -> {MANIFEST_VERSION} (graphs unchanged)")
    return 0
