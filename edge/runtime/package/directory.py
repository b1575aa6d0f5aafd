"""The package on disk: reading manifest.json, checking every file against its sha256, loading the samples."""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.strict_files import brief, parse_json, read_json
from edge.errors import PackageError
from edge.runtime.files import write_atomic
from edge.runtime.package.onnx_scan import NotOnnx, external_data
from edge.runtime.package.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, Manifest
from edge.runtime.package.parsing import manifest_from_dict


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class PolicyPackage:
    """A loaded, validated package: the manifest plus its directory."""

    path: Path
    manifest: Manifest

    def graph_path(self, name: str) -> Path:
        return self.path / self.manifest.graphs[name].file

    def validation_samples(self) -> dict[str, np.ndarray]:
        """Validation arrays keyed `<graph>/<sample>/<in|out>/<tensor>`, each checked against its graph's spec."""
        m, path = self.manifest, self.path / self.manifest.validation.file
        expected = {f"{g}/{s}/{kind}/{t.name}": t.shape for g, spec in m.graphs.items()
                    for s in range(m.validation.samples)
                    for kind, tensors in (("in", spec.inputs), ("out", spec.outputs)) for t in tensors}
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = sorted(set(expected) - set(data.files))
                if missing:
                    more = " ..." if len(missing) > 3 else ""
                    raise PackageError(f"validation samples {path} lack {missing[:3]}{more}; re-export the package")
                arrays = {k: data[k] for k in expected}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise PackageError(f"validation samples {path} cannot be read ({exc}); re-export the package") from None
        for key, shape in expected.items():
            if arrays[key].dtype != np.float32 or list(arrays[key].shape) != list(shape):
                raise PackageError(f"validation samples {path}: {key} is {arrays[key].dtype} "
                                   f"{list(arrays[key].shape)}, the manifest says float32 {shape}; "
                                   "re-export the package")
        return arrays

    def graph_samples(self, graph: str, kind: str = "in") -> list[dict[str, np.ndarray]]:
        """One graph's validation samples, one dict per sample: kind "in" the feeds, "out" the export-time outputs."""
        spec, arrays = self.manifest.graphs[graph], self.validation_samples()
        tensors = spec.inputs if kind == "in" else spec.outputs
        return [{t.name: arrays[f"{graph}/{s}/{kind}/{t.name}"] for t in tensors}
                for s in range(self.manifest.validation.samples)]


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Write `manifest` as `root`/manifest.json atomically: a reader sees the old file or the new one. What is
    written is first parsed and checked as `load_package` will, so no command writes a manifest the runtime
    then refuses."""
    text = manifest.to_json()
    try:
        manifest_from_dict(parse_json(text, root / MANIFEST_NAME, PackageError, "manifest"))
    except PackageError as exc:
        raise PackageError(f"refusing to write a manifest the runtime would refuse: {exc}") from None
    write_atomic(root / MANIFEST_NAME, text)


def read_manifest(root: Path) -> Any:
    """manifest.json of `root` as JSON data (any version)."""
    if not root.is_dir():
        raise PackageError(f"policy package {root} does not exist or is not a directory")
    manifest_file = root / MANIFEST_NAME
    if not manifest_file.is_file():
        raise PackageError(f"{root} has no {MANIFEST_NAME}: not a policy package")
    return read_json(manifest_file, PackageError, "manifest")


def check_version(data: Any, root: Path) -> None:
    """Refuse other manifest versions, saying how to migrate an older package or what to upgrade for a newer one."""
    version = data.get("version") if isinstance(data, dict) else None
    if version == MANIFEST_VERSION or not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version < MANIFEST_VERSION:
        raise PackageError(f"{root} has manifest version {version}; this runtime reads version {MANIFEST_VERSION}: run "
                           f"`edge migrate {root}` (rewrites manifest.json only, the graphs are unchanged) or "
                           "re-export the package")
    newer = isinstance(version, int) and version > MANIFEST_VERSION
    raise PackageError(f"unknown manifest version {brief(version)}: this runtime reads version {MANIFEST_VERSION}"
                       + ("; upgrade edge to load it" if newer else ""))


def check_files(root: Path, manifest: Manifest) -> None:
    """Every file the manifest names exists in `root` with the recorded sha256 (graphs, validation samples)."""
    files = {f"graph {brief(name)}": (g.file, g.sha256) for name, g in manifest.graphs.items()}
    files["validation samples"] = (manifest.validation.file, manifest.validation.sha256)
    for what, (name, digest) in files.items():
        f = root / name
        if not f.is_file():
            raise PackageError(f"{what}: file {f} is missing")
        if sha256_file(f) != digest:
            raise PackageError(f"{what}: {f} does not match the manifest's sha256 "
                               "(truncated or modified after export); re-export the package")
        if what != "validation samples":
            check_embedded(f, what)


def check_embedded(path: Path, what: str) -> None:
    """Refuse an ONNX graph that keeps tensors in external-data files: the manifest's sha256 covers the graph file
    only, and ONNX Runtime would run whatever those other files hold."""
    try:
        outside = external_data(path)
    except NotOnnx:
        return  # not a protobuf at all: the backend's load refuses it, naming the file
    if outside:
        (tensor, location), more = outside[0], len(outside) - 1
        raise PackageError(f"{what}: {path} keeps tensor {brief(tensor)}"
                           + (f" and {more} more" if more else "") + f" in external file {brief(location)}, which "
                           "the manifest's sha256 does not cover; re-export the package (edge-export embeds the "
                           "weights in the graph)")


def load_package(path: str | Path) -> PolicyPackage:
    """Read and validate a policy package directory; raises PackageError naming what is wrong."""
    root = Path(path)
    data = read_manifest(root)
    check_version(data, root)
    manifest = manifest_from_dict(data)
    check_files(root, manifest)
    return PolicyPackage(root, manifest)
