"""Reading and rewriting an exported package on the workstation: per-graph validation feeds, the manifest file."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from edge.runtime.files import write_atomic
from edge.runtime.package import MANIFEST_NAME, Manifest, PolicyPackage


def graph_samples(package: PolicyPackage, graph: str) -> list[dict[str, np.ndarray]]:
    """The validation inputs stored for one graph, one feed dict per sample."""
    arrays = package.validation_samples()
    feeds: dict[int, dict[str, np.ndarray]] = defaultdict(dict)
    for key, value in arrays.items():
        g, s, kind, tensor = key.split("/", 3)
        if g == graph and kind == "in":
            feeds[int(s)][tensor] = value
    return [feeds[s] for s in sorted(feeds)]


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write `manifest` as the package's manifest.json atomically: a reader sees the old file or the new one."""
    write_atomic(directory / MANIFEST_NAME, manifest.to_json())
