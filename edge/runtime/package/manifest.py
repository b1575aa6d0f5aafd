"""The manifest as typed dataclasses, one per section, and the values its fields may take.

The JSON manifest mirrors these dataclasses (`Manifest.to_json`); parsing.py reads it back into them and
checks.py holds the rules across fields. The families' own `policy` sections are in policy_sections.py; what
the rules ask of one is `PolicySection` here, so that this module names no family.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

import numpy as np

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
CPU_PRECISIONS = ("fp32", "int8")  # what the graphs compute their matrix products in

Dim = Union[int, str, tuple]  # a literal, a symbol bound on first sight, or (value, manifest field it comes from)
GraphIO = dict[str, tuple[dict[str, list[Dim]], dict[str, list[Dim]]]]  # graph -> (inputs, outputs) -> tensor -> dims


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
    """Where the package came from: the checkpoint directory (relative to the package directory, so that the
    package and its checkpoint can move together; absolute in older packages), a hash over its files, its
    config.json."""

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



@dataclass
class Fp16OutputError:
    """FP16 vs FP32 on one output over the validation samples; `scaled` = max_abs / max(1, ref_max_abs). With
    `Fp16Preflight.activations` set, the error includes activation rounding (simulated); without, weights only."""

    max_abs: float
    ref_max_abs: float
    scaled: float


@dataclass
class Fp16Tensor:
    """One tensor the FP16 graph holds in FP16: its name, the node and op making it, its max |x| in FP32."""

    tensor: str
    node: str
    op: str
    max_abs: float


@dataclass
class Fp16Range:
    """The range screen of one graph: every FP16-held tensor over `runs` FP32 runs (validation samples and policy
    steps), against `limit` = 65504 / headroom; `below_normal_share` of the non-zero values are below 6.1e-5."""

    tensors: int
    runs: int
    limit: float
    largest: Fp16Tensor | None
    over_limit_count: int
    over_limit: list[Fp16Tensor]
    below_normal_share: float


@dataclass
class Fp16Graph:
    """The FP16 copy of one graph, what the converter did (`conversion`, its report) and its error per output."""

    file: str
    sha256: str
    conversion: dict[str, Any]
    outputs: dict[str, Fp16OutputError]
    range: Fp16Range | None = None  # absent in packages made before the range screen


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
    activations: str | None = None  # how activations were rounded; absent: not at all (weights only)
    range_headroom: float | None = None  # the range screen's headroom; absent: no range screen


@dataclass
class DatasetInfo:
    """What the training data says about the policy (optional; absent in older packages)."""

    fps: int | None = None  # the policy's action rate (LeRobot meta/info.json "fps", or env.fps for simulated training)
    state_names: list[str] | None = None  # features["observation.state"]["names"], flattened, e.g. "shoulder_pan.pos"
    action_names: list[str] | None = None  # features["action"]["names"]


MAX_FPS = 1000  # an action rate above this is a unit mistake (a period in ms, say)


class PolicySection(Protocol):
    """A family's `policy` section (policy_sections.py), as the rules across fields (checks.py) use it."""

    def check_chunking(self, c: Chunking) -> None:
        """Refuse chunking this family's runner does not accept, beyond the generic rules."""

    def graph_io(self, m: Manifest) -> GraphIO:
        """The graphs this family's runner feeds and reads: tensor names and shapes, each dim tied to its field."""


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
    dataset: DatasetInfo | None = None  # the training data's rate (and names); MANIFEST_VERSION stays 2
    format: str = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

