"""Bring an older policy package's manifest to the current version; graphs and samples are never touched.

Version 1 → 2 (the typed manifest): the dead fields `action.units`, Diffusion's
`policy.global_cond_dim` and VQ-BeT's `policy.rvq_layers` / `policy.n_action_pred_token` go (the graph
shapes carry what they said), and `validation.sha256` records the samples file so that a damaged one
is refused at load like a damaged graph. The result must load with the current loader before
manifest.json is replaced (atomically); anything it refuses is left as it was.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

from calibration.strict_files import brief
from edge.errors import PackageError
from edge.runtime.package import (
    MANIFEST_VERSION,
    PolicyPackage,
    check_files,
    check_inside,
    manifest_from_dict,
    read_manifest,
    sha256_file,
    write_manifest,
)


def _v1_to_v2(data: dict[str, Any], root: Path) -> dict[str, Any]:
    if isinstance(data.get("action"), dict):
        data["action"].pop("units", None)
    if isinstance(data.get("policy"), dict):
        for dead in ("global_cond_dim", "rvq_layers", "n_action_pred_token"):
            data["policy"].pop(dead, None)
    validation = data.get("validation")
    if isinstance(validation, dict) and isinstance(validation.get("file"), str):
        check_inside(validation["file"], "validation.file")
        samples = root / validation["file"]
        if not samples.is_file():
            raise PackageError(f"validation samples {samples} are missing; re-export the package")
        validation["sha256"] = sha256_file(samples)
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any], Path], dict[str, Any]]] = {1: _v1_to_v2}  # from version N to N + 1


def migrate_manifest(data: dict[str, Any], root: Path) -> dict[str, Any]:
    """A copy of manifest `data` (of package `root`) brought to MANIFEST_VERSION."""
    data = copy.deepcopy(data)
    while isinstance(data.get("version"), int) and data["version"] in MIGRATIONS:
        version = data["version"]
        data = MIGRATIONS[version](data, root)
        data["version"] = version + 1
    return data


def migrate_package(path: str | Path) -> int:
    """Rewrite `path`/manifest.json at the current version; returns the version it had (current: nothing done)."""
    root = Path(path)
    data = read_manifest(root)
    version = data.get("version") if isinstance(data, dict) else None
    if version == MANIFEST_VERSION:
        return version
    if not isinstance(version, int) or version not in MIGRATIONS:
        raise PackageError(f"{root}: manifest version {brief(version)} has no migration to version {MANIFEST_VERSION}; "
                           "re-export the package")
    migrated = migrate_manifest(data, root)
    package = PolicyPackage(root, manifest_from_dict(migrated))
    check_files(root, package.manifest)
    package.validation_samples()  # readable and shaped as the graphs say, now that its hash is trusted
    write_manifest(root, package.manifest)
    return version
