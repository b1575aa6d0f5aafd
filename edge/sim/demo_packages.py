"""The trained packages this install ships for the simulated reach task (edge/data/demo_<name>/), found on disk.

A list of packages, not of policy families: a package is a directory with a manifest, and its family is whatever
that manifest says. `edge demo --policy NAME` drives one on an emulated arm; `edge eval NAME`, `edge check NAME`,
`edge bench-steps NAME` and `edge-export eval NAME` take a NAME where they take a package directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.errors import CLIError

DATA = Path(__file__).resolve().parents[1] / "data"
PREFIX = "demo_"


@dataclass(frozen=True)
class DemoPackage:
    """One shipped package: the name commands take for it and its directory; every one does edge.sim's reach task."""

    name: str
    path: Path


def bundled() -> list[DemoPackage]:
    """The demo packages this install has (each an edge/data/demo_<name> directory with a manifest), by name."""
    return [DemoPackage(d.name[len(PREFIX):], d) for d in sorted(DATA.glob(PREFIX + "*"))
            if (d / "manifest.json").is_file()]


def demo_names() -> str:
    """The bundled packages' names as a command's help lists them ("act|diffusion|vqbet")."""
    return "|".join(p.name for p in bundled())


def resolve_package(name: str) -> Path:
    """A package directory, or the directory of the bundled demo package called `name`."""
    path = Path(name)
    packages = {p.name: p.path for p in bundled()}
    if not path.exists() and name in packages:
        return packages[name]
    if not path.is_dir():
        raise CLIError(f"{name}: no such package directory (or a bundled demo: {', '.join(packages)})")
    return path
