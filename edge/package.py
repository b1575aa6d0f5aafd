"""The policy package: a directory with `manifest.json`, ONNX graphs and validation samples.

It is the one artefact that crosses from workstation to robot. The manifest is versioned JSON and
mirrors the dataclasses below; `load_package` validates everything before a graph is ever run.

Normalisation is applied by the runtime (edge/normalize.py), not folded into the graphs: graphs
see exactly what LeRobot's model sees (normalised tensors), so a graph can be diffed against
LeRobot's module and the FP16 preflight sees well-scaled inputs. Actions leave the runtime
unnormalised, in the checkpoint's action units.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import PackageError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "edge-policy-package"
MANIFEST_VERSION = 1
NORM_MODES = ("IDENTITY", "MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10")
INPUT_KINDS = ("state", "env_state", "image")
WEIGHT_STORAGE = ("float32", "float16")  # how the graphs store their weights (compute is float32 either way)
CPU_PRECISIONS = ("fp32", "int8")  # what the graphs compute their matrix products in


@dataclass
class Normalization:
    """LeRobot's normalisation of one feature: mode, statistics (lists, per element) and eps."""

    mode: str
    stats: dict[str, list] = field(default_factory=dict)
    eps: float = 1e-8


@dataclass
class ObservationInput:
    """One observation feature as the robot delivers it (images: uint8 HWC from the camera)."""

    name: str
    kind: str
    shape: list[int]
    dtype: str
    normalization: Normalization


@dataclass
class ActionOutput:
    """The action the runtime returns, in the checkpoint's unnormalised action space."""

    name: str
    dim: int
    units: str
    normalization: Normalization


@dataclass
class Chunking:
    """LeRobot's chunking parameters; temporal_ensemble_coeff is None unless ACT ensembles."""

    chunk_size: int
    n_action_steps: int
    n_obs_steps: int = 1
    temporal_ensemble_coeff: float | None = None


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str = "float32"


@dataclass
class GraphSpec:
    """One ONNX graph: its file, content hash, and named inputs and outputs (batch 1, fixed shapes)."""

    file: str
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int


@dataclass
class Source:
    """Where the package came from: the checkpoint directory, a hash over its files, its config."""

    checkpoint: str
    sha256: str
    config: dict[str, Any]


@dataclass
class Validation:
    """Validation samples: graph inputs and the export-time PyTorch outputs, in an .npz file."""

    file: str
    samples: int
    tolerance: float
    export_max_abs_error: dict[str, float] = field(default_factory=dict)


@dataclass
class Manifest:
    policy_type: str
    source: Source
    inputs: list[ObservationInput]
    action: ActionOutput
    chunking: Chunking
    graphs: dict[str, GraphSpec]
    validation: Validation
    policy: dict[str, Any] = field(default_factory=dict)
    fp16_preflight: dict[str, Any] | None = None
    weights: str = "float32"  # "float16": the graphs store float16-rounded weights and compute in float32
    cpu_precision: str = "fp32"  # "int8": matrix products in INT8 (ONNX Runtime MatMulNBits), export/cpu_precision.py
    format: str = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from JSON data, naming the manifest field on any mismatch."""
    if not isinstance(data, dict):
        raise PackageError(f"manifest field {where!r} must be an object, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise PackageError(f"manifest field {where!r} has unknown key(s) {unknown}")
    missing = [n for n, f in names.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PackageError(f"manifest field {where!r} is missing key(s) {missing}")
    return cls(**data)


def manifest_from_dict(data: dict[str, Any]) -> Manifest:
    """Parse and check a manifest dict; raises PackageError naming the first bad field."""
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise PackageError(f"not a policy package manifest (format is not {MANIFEST_FORMAT!r})")
    version = data.get("version")
    if version != MANIFEST_VERSION:
        raise PackageError(f"unknown manifest version {version!r}: this runtime reads version {MANIFEST_VERSION}"
                           + ("; upgrade edge to load it" if isinstance(version, int) and version > MANIFEST_VERSION else ""))
    m = _build(Manifest, data, "manifest")
    m.source = _build(Source, m.source, "source")
    m.inputs = [_build(ObservationInput, d, f"inputs[{i}]") for i, d in enumerate(m.inputs)]
    for i, inp in enumerate(m.inputs):
        inp.normalization = _build(Normalization, inp.normalization, f"inputs[{i}].normalization")
    m.action = _build(ActionOutput, m.action, "action")
    m.action.normalization = _build(Normalization, m.action.normalization, "action.normalization")
    m.chunking = _build(Chunking, m.chunking, "chunking")
    m.validation = _build(Validation, m.validation, "validation")
    graphs = {}
    for name, g in (m.graphs or {}).items():
        spec = _build(GraphSpec, g, f"graphs.{name}")
        spec.inputs = [_build(TensorSpec, t, f"graphs.{name}.inputs") for t in spec.inputs]
        spec.outputs = [_build(TensorSpec, t, f"graphs.{name}.outputs") for t in spec.outputs]
        graphs[name] = spec
    m.graphs = graphs
    _check_semantics(m)
    return m


def _check_semantics(m: Manifest) -> None:
    if not m.graphs:
        raise PackageError("manifest lists no graphs")
    if m.weights not in WEIGHT_STORAGE:
        raise PackageError(f"manifest field 'weights' is {m.weights!r} (expected one of {WEIGHT_STORAGE})")
    if m.cpu_precision not in CPU_PRECISIONS:
        raise PackageError(f"manifest field 'cpu_precision' is {m.cpu_precision!r} (expected one of {CPU_PRECISIONS})")
    for inp in m.inputs:
        if inp.kind not in INPUT_KINDS:
            raise PackageError(f"input {inp.name!r}: unknown kind {inp.kind!r} (expected one of {INPUT_KINDS})")
        if inp.kind == "image" and (inp.dtype != "uint8" or len(inp.shape) != 3 or inp.shape[2] != 3):
            raise PackageError(f"input {inp.name!r}: images must be uint8 HWC with 3 channels, manifest says "
                               f"{inp.dtype} {inp.shape}")
        _check_norm(inp.normalization, f"input {inp.name!r}")
    _check_norm(m.action.normalization, "action")
    c = m.chunking
    if not 1 <= c.n_action_steps <= c.chunk_size or c.n_obs_steps < 1:
        raise PackageError(f"chunking is inconsistent: chunk_size={c.chunk_size}, n_action_steps={c.n_action_steps}, "
                           f"n_obs_steps={c.n_obs_steps}")


def _check_norm(norm: Normalization, where: str) -> None:
    if norm.mode not in NORM_MODES:
        raise PackageError(f"{where}: unknown normalisation mode {norm.mode!r} (expected one of {NORM_MODES})")


@dataclass
class PolicyPackage:
    """A loaded, validated package: the manifest plus its directory."""

    path: Path
    manifest: Manifest

    def graph_path(self, name: str) -> Path:
        return self.path / self.manifest.graphs[name].file

    def validation_samples(self) -> dict[str, np.ndarray]:
        """Validation arrays keyed `<graph>/<sample>/<in|out>/<tensor>`."""
        with np.load(self.path / self.manifest.validation.file) as data:
            return {k: data[k] for k in data.files}


def load_package(path: str | Path, verify_hashes: bool = True) -> PolicyPackage:
    """Read and validate a policy package directory; raises PackageError naming what is wrong."""
    root = Path(path)
    if not root.is_dir():
        raise PackageError(f"policy package {root} does not exist or is not a directory")
    manifest_file = root / MANIFEST_NAME
    if not manifest_file.is_file():
        raise PackageError(f"{root} has no {MANIFEST_NAME}: not a policy package")
    try:
        data = json.loads(manifest_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackageError(f"{manifest_file} is not valid JSON: {exc}") from None
    manifest = manifest_from_dict(data)
    for name, g in manifest.graphs.items():
        f = root / g.file
        if not f.is_file():
            raise PackageError(f"graph {name!r}: file {f} is missing")
        if verify_hashes and sha256_file(f) != g.sha256:
            raise PackageError(f"graph {name!r}: {f} does not match the manifest's sha256 "
                               "(truncated or modified after export); re-export the package")
    if not (root / manifest.validation.file).is_file():
        raise PackageError(f"validation samples {root / manifest.validation.file} are missing")
    return PolicyPackage(root, manifest)
