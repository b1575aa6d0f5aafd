"""The policy package: a directory with `manifest.json`, ONNX graphs and validation samples.

It is the one artefact that crosses from workstation to robot. The manifest is versioned JSON and
mirrors the dataclasses below, every section typed, the policy family's own section included.
`load_package` is the one loader: it parses each field to its type and cross-checks them (graph
inputs and outputs against the observation inputs, action dim, chunking and the family's section;
statistics against their features) before a graph is ever run, and names the manifest field at
fault. `edge check`, every runner, `edge eval`, `edge build` and the exporter (which loads what it
wrote) all go through it, so what one refuses all refuse.

Normalisation is applied by the runtime (edge/runtime/normalize.py), not folded into the graphs: graphs
see exactly what LeRobot's model sees (normalised tensors), so a graph can be diffed against
LeRobot's module and the FP16 preflight sees well-scaled inputs. Actions leave the runtime
unnormalised, in the checkpoint's action units.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Union

import numpy as np

from edge.errors import OptionError, PackageError
from edge.runtime.schedulers import SAMPLERS, SchedulerConfig

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "edge-policy-package"
MANIFEST_VERSION = 2
MAX_OPSET = 20  # TensorRT 10.3 (JetPack 6) parses ONNX opsets up to 20
NORM_MODES = ("IDENTITY", "MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10")
MODE_STATS = {"IDENTITY": (), "MEAN_STD": ("mean", "std"), "MIN_MAX": ("min", "max"), "QUANTILES": ("q01", "q99"),
              "QUANTILE10": ("q10", "q90")}  # the statistics each mode reads (LeRobot's normalize_processor.py)
STATISTICS = ("mean", "std", "min", "max", "q01", "q99", "q10", "q90")  # what the runtime reads (OOD bounds too)
INPUT_KINDS = ("state", "env_state", "image")
WEIGHT_STORAGE = ("float32", "float16")  # how the graphs store their weights (compute is float32 either way)
_SHA256 = re.compile(r"[0-9a-f]{64}")
CPU_PRECISIONS = ("fp32", "int8")  # what the graphs compute their matrix products in


@dataclass
class Normalization:
    """LeRobot's normalisation of one feature: mode, statistics (per element; images per channel) and eps."""

    mode: str
    stats: dict[str, list[float]] = field(default_factory=dict)
    eps: float = 1e-8


@dataclass
class ObservationInput:
    """One observation feature as the robot delivers it (images: uint8 HWC from the camera)."""

    name: str
    kind: str
    shape: list[int]
    dtype: str
    normalization: Normalization

    @property
    def elements(self) -> int:
        """How many values each statistic holds: one per channel for images, one per element otherwise."""
        return 3 if self.kind == "image" else int(np.prod(self.shape))


@dataclass
class ActionOutput:
    """The action the runtime returns, in the checkpoint's unnormalised action space."""

    name: str
    dim: int
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
    """One named graph input or output: fixed shape with batch 1, float32."""

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
    """Where the package came from: the checkpoint directory, a hash over its files, its config.json."""

    checkpoint: str
    sha256: str
    config: dict[str, Any]


@dataclass
class Validation:
    """Validation samples (graph inputs and the export-time PyTorch outputs) in an .npz file, and the
    export-time max |ONNX Runtime - PyTorch| per graph."""

    file: str
    sha256: str
    samples: int
    tolerance: float
    export_max_abs_error: dict[str, float] = field(default_factory=dict)


# The family's `policy` sections. Each says which chunking its runner accepts (`check_chunking`, beyond the generic
# rules) and which graphs, with which tensor names and shapes, its runner feeds and reads (`graph_io`); a new family
# adds its section here and to POLICY_SECTIONS, a new field goes into its section (and into edge/runtime/migrate.py if
# older packages lack it).

Dim = Union[int, str, tuple]  # a literal, a symbol bound on first sight, or (value, manifest field it comes from)
GraphIO = dict[str, tuple[dict[str, list[Dim]], dict[str, list[Dim]]]]  # graph -> (inputs, outputs) -> tensor -> dims


@dataclass
class ACTSection:
    """ACT's `policy` section: empty, its chunking (and temporal ensembling) lives in `chunking`."""

    def check_chunking(self, c: Chunking) -> None:
        if c.n_obs_steps != 1:
            raise PackageError(f"{_field('chunking.n_obs_steps')} is {c.n_obs_steps}; ACT observes one step")
        if c.temporal_ensemble_coeff is not None and c.n_action_steps != 1:
            raise PackageError(f"{_field('chunking.n_action_steps')} is {c.n_action_steps}; with temporal ensembling "
                               "a new chunk is computed every step, so it must be 1 (as LeRobot requires)")

    def graph_io(self, m: Manifest) -> GraphIO:
        chunk = [1, (m.chunking.chunk_size, "chunking.chunk_size"), (m.action.dim, "action.dim")]
        return {"act": ({inp.name: [1, *_feature_dims(m, i)] for i, inp in enumerate(m.inputs)}, {"action": chunk})}


@dataclass
class FusedGraph:
    """A graph running a whole sampler loop (`denoise_<K>`): which sampler at how many steps."""

    sampler: str
    num_inference_steps: int


@dataclass
class DiffusionSection:
    """Diffusion Policy's `policy` section: the default sampler and K, the training noise schedule, fused graphs."""

    sampler: str
    num_inference_steps: int
    scheduler: SchedulerConfig
    fused_graphs: dict[str, FusedGraph] = field(default_factory=dict)

    def check_chunking(self, c: Chunking) -> None:
        _not_ensembled(c, "Diffusion Policy")
        if c.n_obs_steps - 1 + c.n_action_steps > c.chunk_size:
            raise PackageError(f"{_field('chunking')}: n_obs_steps - 1 + n_action_steps = "
                               f"{c.n_obs_steps - 1 + c.n_action_steps} exceeds chunk_size (horizon) {c.chunk_size}")

    def graph_io(self, m: Manifest) -> GraphIO:
        if self.sampler not in SAMPLERS:
            raise PackageError(f"{_field('policy.sampler')} is {self.sampler!r}; known samplers {list(SAMPLERS)}")
        n_train = self.scheduler.num_train_timesteps
        if not 1 <= self.num_inference_steps <= n_train:
            raise PackageError(f"{_field('policy.num_inference_steps')} is {self.num_inference_steps}; it must be in "
                               f"1..{n_train} (policy.scheduler.num_train_timesteps)")
        for name, f in self.fused_graphs.items():
            if f.sampler != "ddim" or not 1 <= f.num_inference_steps <= n_train:
                raise PackageError(f"{_field(f'policy.fused_graphs.{name}')} is {f.sampler} with "
                                   f"{f.num_inference_steps} steps; fused graphs run DDIM with 1..{n_train} steps")
        for key in ("beta_start", "beta_end"):
            _finite(getattr(self.scheduler, key), f"policy.scheduler.{key}", positive=True, below=1.0)
        _finite(self.scheduler.clip_sample_range, "policy.scheduler.clip_sample_range", positive=True)
        chunk = [1, (m.chunking.chunk_size, "chunking.chunk_size"), (m.action.dim, "action.dim")]
        steps = (m.chunking.n_obs_steps, "chunking.n_obs_steps")
        cond = [1, "global_cond_dim"]
        graphs = {
            "obs_encoder": ({inp.name: [1, steps, *_feature_dims(m, i)] for i, inp in enumerate(m.inputs)},
                            {"global_cond": cond}),
            "denoiser": ({"sample": chunk, "timestep": [1], "global_cond": cond}, {"model_output": chunk}),
        }
        graphs.update({name: ({"noise": chunk, "global_cond": cond}, {"action": chunk}) for name in self.fused_graphs})
        return graphs


@dataclass
class VQBeTSection:
    """VQ-BeT's `policy` section: codebook size, softmax temperature, secondary-code mode, the camera it encodes."""

    codebook_size: int
    bet_softmax_temperature: float
    sequentially_select: bool
    image_feature: str

    def check_chunking(self, c: Chunking) -> None:
        _not_ensembled(c, "VQ-BeT")
        if c.n_action_steps != c.chunk_size:
            raise PackageError(f"{_field('chunking.n_action_steps')} is {c.n_action_steps}; VQ-BeT queues its whole "
                               f"chunk, so it must equal chunk_size ({c.chunk_size})")

    def graph_io(self, m: Manifest) -> GraphIO:
        if self.codebook_size < 1:
            raise PackageError(f"{_field('policy.codebook_size')} is {self.codebook_size}; it must be >= 1")
        _finite(self.bet_softmax_temperature, "policy.bet_softmax_temperature", positive=True)
        kinds = [inp.kind for inp in m.inputs]
        images = [i for i, inp in enumerate(m.inputs) if inp.name == self.image_feature and inp.kind == "image"]
        if sorted(kinds) != ["image", "state"] or not images:
            raise PackageError(f"{_field('policy.image_feature')} is {self.image_feature!r}; VQ-BeT takes one state "
                               f"input and that image, the manifest's inputs are "
                               f"{[(inp.name, inp.kind) for inp in m.inputs]}")
        state = kinds.index("state")
        codes = (m.chunking.chunk_size * m.action.dim, "chunking.chunk_size x action.dim")
        book = (self.codebook_size, "policy.codebook_size")
        layers: Dim = ((2, "policy.sequentially_select (primary + secondary)") if self.sequentially_select
                       else "rvq_layers")
        steps = (m.chunking.n_obs_steps, "chunking.n_obs_steps")
        window = {m.inputs[state].name: [1, steps, *_feature_dims(m, state)],
                  "image_features": [1, steps, "image_features"]}
        offsets = [1, layers, book, codes]
        graphs = {
            "encoder": ({self.image_feature: [1, *_feature_dims(m, images[0])]},
                        {"image_features": [1, "image_features"]}),
            "decode": ({"codes": [1, layers, book], "offsets": offsets},
                       {"action": [1, (m.chunking.chunk_size, "chunking.chunk_size"), (m.action.dim, "action.dim")]}),
        }
        if self.sequentially_select:
            graphs["policy"] = (window, {"primary_logits": [1, book], "features": [1, "gpt_features"],
                                         "offsets": offsets})
            graphs["secondary"] = ({"features": [1, "gpt_features"], "primary_code": [1, book]},
                                   {"secondary_logits": [1, book]})
        else:
            graphs["policy"] = (window, {"logits": [1, layers, book], "offsets": offsets})
        return graphs


PolicySection = Union[ACTSection, DiffusionSection, VQBeTSection]
POLICY_SECTIONS: dict[str, type] = {"act": ACTSection, "diffusion": DiffusionSection, "vqbet": VQBeTSection}


@dataclass
class Fp16OutputError:
    """FP16 vs FP32 on one output over the validation samples; `scaled` = max_abs / max(1, ref_max_abs)."""

    max_abs: float
    ref_max_abs: float
    scaled: float


@dataclass
class Fp16Graph:
    """The FP16 copy of one graph, what the converter did (`conversion`, its report) and its error per output."""

    file: str
    sha256: str
    conversion: dict[str, Any]
    outputs: dict[str, Fp16OutputError]


@dataclass
class Fp16Step:
    """One policy step run with FP32 and FP16 graphs: action error in policy and normalised units."""

    step: int
    max_abs: float
    max_abs_normalized: float


@dataclass
class Fp16Preflight:
    """What `python -m export.fp16` measured on the workstation's CPU; `ok` when every error is within tolerance."""

    ok: bool
    tolerance: float
    worst_output_scaled_error: float
    worst_step_normalized_action_error: float
    graphs: dict[str, Fp16Graph]
    steps: list[Fp16Step]
    seed: int
    onnxruntime: str
    provider: str
    created: str


@dataclass
class Manifest:
    policy_type: str
    source: Source
    inputs: list[ObservationInput]
    action: ActionOutput
    chunking: Chunking
    graphs: dict[str, GraphSpec]
    validation: Validation
    policy: PolicySection
    fp16_preflight: Fp16Preflight | None = None
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


# ---- parsing: JSON → typed dataclasses, naming the field on any mismatch ------------------------------------

def _field(where: str) -> str:
    return f"manifest field {where!r}"


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})" if not isinstance(value, (dict, list)) else type(value).__name__


def parse_field(tp: Any, value: Any, where: str) -> Any:
    """`value` from JSON as type `tp` (a dataclass, list/dict of, Optional, int, float, str, bool or Any); `where`
    names the manifest field in errors."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return parse_field(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise PackageError(f"{_field(where)} must be a list, got {_got(value)}")
        return [parse_field(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PackageError(f"{_field(where)} must be an object, got {_got(value)}")
        return {k: parse_field(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]
    raise PackageError(f"{_field(where)} must be {kind}, got {_got(value)}")


def _parse_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise PackageError(f"{_field(where)} must be an object, got {_got(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PackageError(f"{_field(where)} has unknown key(s) {unknown}")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PackageError(f"{_field(where)} is missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    values = {k: parse_field(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except OptionError as exc:  # a section's own checks (SchedulerConfig)
        raise PackageError(f"{_field(where)}: {exc}") from None


def manifest_from_dict(data: Any) -> Manifest:
    """Parse and check a manifest dict; raises PackageError naming the first bad field."""
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise PackageError(f"not a policy package manifest (format is not {MANIFEST_FORMAT!r})")
    policy_type = data.get("policy_type")
    if not isinstance(policy_type, str) or policy_type not in POLICY_SECTIONS:
        raise PackageError(f"{_field('policy_type')} is {policy_type!r}: this runtime runs {sorted(POLICY_SECTIONS)}")
    hints = dict(typing.get_type_hints(Manifest), policy=POLICY_SECTIONS[policy_type])
    fields = {f.name for f in dataclasses.fields(Manifest)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise PackageError(f"the manifest has unknown key(s) {unknown}")
    missing = [f.name for f in dataclasses.fields(Manifest) if f.name not in data and f.default is dataclasses.MISSING]
    if missing:
        raise PackageError(f"the manifest is missing key(s) {missing}")
    m = Manifest(**{k: parse_field(hints[k], v, k) for k, v in data.items()})
    check_manifest(m)
    return m


# ---- checks: values and cross-field consistency ---------------------------------------------------------------

def _finite(value: float, where: str, positive: bool = False, below: float | None = None) -> None:
    """A number finite in float32 (the runtime's precision), optionally > 0 and < `below`."""
    with np.errstate(over="ignore"):
        ok = bool(np.isfinite(np.float32(value))) and (not positive or np.float32(value) > 0) \
            and (below is None or value < below)
    if not ok:
        raise PackageError(f"{_field(where)} is {value!r}; it must be a number finite in float32"
                           + (" and > 0" if positive else "") + (f" and < {below:g}" if below is not None else ""))


def check_inside(name: str, where: str) -> None:
    """Files a manifest names must lie inside the package (no absolute paths, no '..')."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise PackageError(f"{_field(where)} is {name!r}; it must be a file name inside the package")


def _digest(value: str, where: str) -> None:
    if not _SHA256.fullmatch(value):
        raise PackageError(f"{_field(where)} is {value!r}, not a sha256 hex digest")


def check_normalization(norm: Normalization, where: str, elements: int, divides: bool) -> None:
    """Mode, statistics and eps of one feature; `where` names it (manifest field or checkpoint statistic).

    Every statistic the runtime reads must hold `elements` finite values; spreads are never negative and
    ranges never reversed; where the runtime divides by a spread (`divides`: inputs), it must be > 0.
    """
    if norm.mode not in NORM_MODES:
        raise PackageError(f"{where}: unknown normalisation mode {norm.mode!r} (expected one of {NORM_MODES})")
    if not np.isfinite(np.float32(norm.eps)) or np.float32(norm.eps) <= 0:
        raise PackageError(f"{where}: eps is {norm.eps!r}; it must be a number > 0 and finite in float32")
    unknown = sorted(set(norm.stats) - set(STATISTICS))
    if unknown:
        raise PackageError(f"{where}: unknown statistic(s) {unknown} (known: {list(STATISTICS)})")
    missing = [s for s in MODE_STATS[norm.mode] if s not in norm.stats]
    if missing:
        raise PackageError(f"{where}: {norm.mode} normalisation needs the statistic(s) {missing}")
    for name, values in norm.stats.items():
        if len(values) != elements:
            raise PackageError(f"{where}: statistic {name!r} has {len(values)} value(s), the feature has {elements}")
        with np.errstate(over="ignore"):
            bad = np.flatnonzero(~np.isfinite(np.asarray(values, np.float32))).tolist()
        if bad:
            raise PackageError(f"{where}: statistic {name!r} is not finite in float32 (the runtime's precision) at "
                               f"index {bad} ({values[bad[0]]!r})")
    if "std" in norm.stats:
        std = np.asarray(norm.stats["std"])
        zero_ok = not (divides and norm.mode == "MEAN_STD")
        bad = np.flatnonzero(std < 0 if zero_ok else std <= 0).tolist()
        if bad:
            raise PackageError(f"{where}: statistic 'std' is {float(std[bad[0]])!r} at index {bad}; "
                               + ("a standard deviation is never negative" if zero_ok else
                                  "MEAN_STD divides by std + eps, so a zero spread turns any value off the training "
                                  "constant into ~1/eps"))
    for lo_key, hi_key in (("min", "max"), ("q01", "q99"), ("q10", "q90")):
        if lo_key in norm.stats and hi_key in norm.stats:
            lo, hi = np.asarray(norm.stats[lo_key]), np.asarray(norm.stats[hi_key])
            divided = divides and MODE_STATS[norm.mode] == (lo_key, hi_key)
            bad = np.flatnonzero(hi <= lo if divided else hi < lo).tolist()
            if bad:
                raise PackageError(f"{where}: statistics {lo_key!r}/{hi_key!r} are {float(lo[bad[0]])!r}/"
                                   f"{float(hi[bad[0]])!r} at "
                                   f"index {bad}; " + (f"{norm.mode} divides by {hi_key} - {lo_key}, which must be > 0"
                                                       if divided else "the range is reversed"))


def check_chunking(section: PolicySection, c: Chunking) -> None:
    """LeRobot's chunking rules, generic and the family's, so no runner silently queues fewer actions."""
    if c.chunk_size < 1 or not 1 <= c.n_action_steps <= c.chunk_size or c.n_obs_steps < 1:
        raise PackageError(f"{_field('chunking')} is inconsistent: chunk_size={c.chunk_size}, "
                           f"n_action_steps={c.n_action_steps} (must be in 1..chunk_size), n_obs_steps={c.n_obs_steps}")
    if c.temporal_ensemble_coeff is not None:
        _finite(c.temporal_ensemble_coeff, "chunking.temporal_ensemble_coeff")
    section.check_chunking(c)


def _not_ensembled(c: Chunking, family: str) -> None:
    if c.temporal_ensemble_coeff is not None:
        raise PackageError(f"{_field('chunking.temporal_ensemble_coeff')} is {c.temporal_ensemble_coeff}; "
                           f"{family} does not ensemble (only ACT does)")


def _check_inputs(m: Manifest) -> None:
    if not m.inputs:
        raise PackageError(f"{_field('inputs')} is empty: a policy observes something")
    seen: set[str] = set()
    for i, inp in enumerate(m.inputs):
        where = f"inputs[{i}]"
        if not inp.name or inp.name in seen:
            raise PackageError(f"{_field(where + '.name')} is {inp.name!r}: feature names must be non-empty and unique")
        seen.add(inp.name)
        if inp.kind not in INPUT_KINDS:
            raise PackageError(f"{_field(where + '.kind')} ({inp.name}) is {inp.kind!r}; expected one of {INPUT_KINDS}")
        if not inp.shape or any(d < 1 for d in inp.shape):
            raise PackageError(f"{_field(where + '.shape')} ({inp.name}) is {inp.shape}; dimensions must be >= 1")
        if inp.kind == "image" and (inp.dtype != "uint8" or len(inp.shape) != 3 or inp.shape[2] != 3):
            raise PackageError(f"{_field(where)} ({inp.name}): images must be uint8 HWC with 3 channels, manifest says "
                               f"{inp.dtype} {inp.shape}")
        if inp.kind != "image" and inp.dtype != "float32":
            raise PackageError(f"{_field(where + '.dtype')} ({inp.name}) is {inp.dtype!r}; states are float32")
        check_normalization(inp.normalization, f"{_field(where + '.normalization')} ({inp.name})", inp.elements,
                            divides=True)


def _check_graph_specs(m: Manifest) -> None:
    for name, g in m.graphs.items():
        where = f"graphs.{name}"
        check_inside(g.file, where + ".file")
        _digest(g.sha256, where + ".sha256")
        if not 1 <= g.opset <= MAX_OPSET:
            raise PackageError(f"{_field(where + '.opset')} is {g.opset}; packages use opset 1..{MAX_OPSET}")
        for kind, tensors in (("inputs", g.inputs), ("outputs", g.outputs)):
            names = [t.name for t in tensors]
            if not tensors or len(set(names)) != len(names):
                raise PackageError(f"{_field(f'{where}.{kind}')} is {names}; names must be non-empty and unique")
            for k, t in enumerate(tensors):
                if t.dtype != "float32" or any(d < 1 for d in t.shape):
                    raise PackageError(f"{_field(f'{where}.{kind}[{k}]')} ({t.name}) is {t.dtype} {t.shape}; graph "
                                       "tensors are float32 with fixed dimensions >= 1")


def _feature_dims(m: Manifest, i: int) -> list[Dim]:
    """Input i as a graph sees it (normalised, channels first for images), each dim tied to its manifest field."""
    inp = m.inputs[i]
    dims = [(d, f"inputs[{i}].shape[{k}]") for k, d in enumerate(inp.shape)]
    return [3, dims[0], dims[1]] if inp.kind == "image" else dims


def _check_graph_io(m: Manifest, expected: GraphIO) -> None:
    """Graph names and every tensor's name and shape against what the family's runner feeds and reads."""
    if set(m.graphs) != set(expected):
        raise PackageError(f"{_field('graphs')} lists {sorted(m.graphs)}; a {m.policy_type} package with this "
                           f"policy section has {sorted(expected)}")
    bound: dict[str, tuple[int, str]] = {}
    for graph, (want_in, want_out) in expected.items():
        spec = m.graphs[graph]
        for kind, want, have in (("inputs", want_in, spec.inputs), ("outputs", want_out, spec.outputs)):
            if sorted(t.name for t in have) != sorted(want):
                raise PackageError(f"{_field(f'graphs.{graph}.{kind}')} names {[t.name for t in have]}; the "
                                   f"{m.policy_type} runner uses {list(want)}")
            for k, t in enumerate(have):
                where = f"graphs.{graph}.{kind}[{k}].shape"
                pattern = want[t.name]
                if len(t.shape) != len(pattern):
                    raise PackageError(f"{_field(where)} ({t.name}) is {t.shape}; expected {len(pattern)} dimensions")
                for d, (got, exp) in enumerate(zip(t.shape, pattern)):
                    if isinstance(exp, str):
                        value, first = bound.setdefault(exp, (got, where))
                        reason = f"{first} says {value} ({exp.replace('_', ' ')})"
                    elif isinstance(exp, tuple):
                        value, reason = exp[0], f"manifest field {exp[1]!r} is {exp[0]}"
                    else:
                        value, reason = exp, f"it is always {exp}"
                    if got != value:
                        raise PackageError(f"{_field(where)} ({t.name}) is {t.shape}: dimension {d} is {got}, "
                                           f"but {reason}")


def _check_validation(m: Manifest) -> None:
    v = m.validation
    check_inside(v.file, "validation.file")
    _digest(v.sha256, "validation.sha256")
    if v.samples < 1:
        raise PackageError(f"{_field('validation.samples')} is {v.samples}; a package carries at least one sample")
    _finite(v.tolerance, "validation.tolerance", positive=True)
    if set(v.export_max_abs_error) != set(m.graphs):
        raise PackageError(f"{_field('validation.export_max_abs_error')} covers {sorted(v.export_max_abs_error)}, "
                           f"the graphs are {sorted(m.graphs)}")
    for name, err in v.export_max_abs_error.items():
        if not math.isfinite(err) or err < 0:
            raise PackageError(f"{_field(f'validation.export_max_abs_error.{name}')} is {err!r}")


def _check_fp16(m: Manifest) -> None:
    f = m.fp16_preflight
    if f is None:
        return
    _finite(f.tolerance, "fp16_preflight.tolerance", positive=True)
    for name, g in f.graphs.items():
        if name not in m.graphs:
            raise PackageError(f"{_field(f'fp16_preflight.graphs.{name}')}: the package has no graph {name!r}")
        check_inside(g.file, f"fp16_preflight.graphs.{name}.file")
        _digest(g.sha256, f"fp16_preflight.graphs.{name}.sha256")


def check_manifest(m: Manifest) -> None:
    """Every value and cross-field rule; PackageError naming the manifest field at fault."""
    if m.weights not in WEIGHT_STORAGE:
        raise PackageError(f"{_field('weights')} is {m.weights!r} (expected one of {WEIGHT_STORAGE})")
    if m.cpu_precision not in CPU_PRECISIONS:
        raise PackageError(f"{_field('cpu_precision')} is {m.cpu_precision!r} (expected one of {CPU_PRECISIONS})")
    if m.source.config.get("type", m.policy_type) != m.policy_type:
        raise PackageError(f"{_field('source.config.type')} is {m.source.config.get('type')!r} but "
                           f"{_field('policy_type')} is {m.policy_type!r}")
    _check_inputs(m)
    if m.action.dim < 1:
        raise PackageError(f"{_field('action.dim')} is {m.action.dim}; it must be >= 1")
    check_normalization(m.action.normalization, _field("action.normalization"), m.action.dim, divides=False)
    check_chunking(m.policy, m.chunking)
    _check_graph_specs(m)
    _check_graph_io(m, m.policy.graph_io(m))
    _check_validation(m)
    _check_fp16(m)


# ---- the package on disk ----------------------------------------------------------------------------------------

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


def read_manifest(root: Path) -> Any:
    """manifest.json of `root` as JSON data (any version)."""
    if not root.is_dir():
        raise PackageError(f"policy package {root} does not exist or is not a directory")
    manifest_file = root / MANIFEST_NAME
    if not manifest_file.is_file():
        raise PackageError(f"{root} has no {MANIFEST_NAME}: not a policy package")
    try:
        return json.loads(manifest_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackageError(f"{manifest_file} is not valid JSON: {exc}") from None


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
    raise PackageError(f"unknown manifest version {version!r}: this runtime reads version {MANIFEST_VERSION}"
                       + ("; upgrade edge to load it" if newer else ""))


def check_files(root: Path, manifest: Manifest) -> None:
    """Every file the manifest names exists in `root` with the recorded sha256 (graphs, validation samples)."""
    files = {f"graph {name!r}": (g.file, g.sha256) for name, g in manifest.graphs.items()}
    files["validation samples"] = (manifest.validation.file, manifest.validation.sha256)
    for what, (name, digest) in files.items():
        f = root / name
        if not f.is_file():
            raise PackageError(f"{what}: file {f} is missing")
        if sha256_file(f) != digest:
            raise PackageError(f"{what}: {f} does not match the manifest's sha256 "
                               "(truncated or modified after export); re-export the package")


def load_package(path: str | Path) -> PolicyPackage:
    """Read and validate a policy package directory; raises PackageError naming what is wrong."""
    root = Path(path)
    data = read_manifest(root)
    check_version(data, root)
    manifest = manifest_from_dict(data)
    check_files(root, manifest)
    return PolicyPackage(root, manifest)
