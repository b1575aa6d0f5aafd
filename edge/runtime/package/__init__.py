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

This module is the package's face; the work is split by job: manifest.py (the typed sections and allowed
values), policy_sections.py (the families' `policy` sections, Diffusion's noise schedule), parsing.py (JSON to
dataclasses), checks.py (the rules across fields), fields.py (naming the field at fault), directory.py (the files
on disk and `load_package`).
"""

from edge.runtime.package.checks import check_chunking, check_inside, check_manifest, check_normalization
from edge.runtime.package.directory import (
    PolicyPackage,
    check_embedded,
    check_files,
    check_version,
    load_package,
    read_manifest,
    sha256_file,
    write_manifest,
)
from edge.runtime.package.manifest import (
    CPU_PRECISIONS,
    INPUT_KINDS,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    MAX_OPSET,
    MODE_STATS,
    NORM_MODES,
    STATISTICS,
    WEIGHT_STORAGE,
    ActionOutput,
    Chunking,
    DatasetInfo,
    Fp16Graph,
    Fp16OutputError,
    Fp16Preflight,
    Fp16Range,
    Fp16Step,
    Fp16Tensor,
    GraphIO,
    GraphSpec,
    Manifest,
    Normalization,
    ObservationInput,
    PolicySection,
    Source,
    TensorSpec,
    Validation,
)
from edge.runtime.package.parsing import manifest_from_dict, parse_field
from edge.runtime.package.policy_sections import (
    POLICY_SECTIONS,
    SAMPLERS,
    ACTSection,
    DiffusionSection,
    FusedGraph,
    SchedulerConfig,
    VQBeTSection,
)

__all__ = [
    "load_package", "PolicyPackage", "read_manifest", "check_version", "check_files", "check_embedded", "sha256_file",
    "write_manifest",
    "Manifest", "Normalization", "ObservationInput", "ActionOutput", "Chunking", "DatasetInfo", "TensorSpec",
    "GraphSpec", "Source", "Validation", "Fp16Preflight", "Fp16Graph", "Fp16OutputError", "Fp16Step", "Fp16Range",
    "Fp16Tensor",
    "PolicySection", "GraphIO", "POLICY_SECTIONS", "ACTSection", "DiffusionSection", "FusedGraph", "VQBeTSection",
    "SchedulerConfig", "SAMPLERS",
    "manifest_from_dict", "parse_field", "check_manifest", "check_chunking", "check_normalization", "check_inside",
    "MANIFEST_NAME", "MANIFEST_FORMAT", "MANIFEST_VERSION", "MAX_OPSET", "NORM_MODES", "MODE_STATS", "STATISTICS",
    "INPUT_KINDS", "WEIGHT_STORAGE", "CPU_PRECISIONS",
]
