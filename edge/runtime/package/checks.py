"""The manifest's rules: every value in range and every field consistent with the others, before a graph runs.

Each check raises PackageError naming the manifest field at fault (fields.py).
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath

import numpy as np

from calibration.strict_files import brief
from edge.errors import PackageError
from edge.runtime.package.fields import check_finite, field_ref
from edge.runtime.package.manifest import (
    CPU_PRECISIONS,
    INPUT_KINDS,
    MAX_FPS,
    MAX_OPSET,
    MODE_STATS,
    NORM_MODES,
    STATISTICS,
    WEIGHT_STORAGE,
    Chunking,
    GraphIO,
    Manifest,
    Normalization,
    PolicySection,
)

_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_inside(name: str, where: str) -> None:
    """Files a manifest names must lie inside the package (no absolute paths, no '..')."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise PackageError(f"{field_ref(where)} is {brief(name)}; it must be a file name inside the package")


def check_digest(value: str, where: str) -> None:
    if not _SHA256.fullmatch(value):
        raise PackageError(f"{field_ref(where)} is {brief(value)}, not a sha256 hex digest")


def check_normalization(norm: Normalization, where: str, elements: int, divides: bool) -> None:
    """Mode, statistics and eps of one feature; `where` names it (manifest field or checkpoint statistic).

    Every statistic the runtime reads must hold `elements` finite values; spreads are never negative and
    ranges never reversed; where the runtime divides by a spread (`divides`: inputs), it must be > 0.
    """
    if norm.mode not in NORM_MODES:
        raise PackageError(f"{where}: unknown normalisation mode {brief(norm.mode)} (expected one of {NORM_MODES})")
    if not np.isfinite(np.float32(norm.eps)) or np.float32(norm.eps) <= 0:
        raise PackageError(f"{where}: eps is {brief(norm.eps)}; it must be a number > 0 and finite in float32")
    unknown = sorted(set(norm.stats) - set(STATISTICS))
    if unknown:
        raise PackageError(f"{where}: unknown statistic(s) {unknown} (known: {list(STATISTICS)})")
    missing = [s for s in MODE_STATS[norm.mode] if s not in norm.stats]
    if missing:
        raise PackageError(f"{where}: {norm.mode} normalisation needs the statistic(s) {missing}")
    for name, values in norm.stats.items():
        if len(values) != elements:
            raise PackageError(f"{where}: statistic {brief(name)} has {len(values)} value(s), the feature has {elements}")
        with np.errstate(over="ignore"):
            bad = np.flatnonzero(~np.isfinite(np.asarray(values, np.float32))).tolist()
        if bad:
            raise PackageError(f"{where}: statistic {brief(name)} is not finite in float32 (the runtime's precision) at "
                               f"index {bad} ({brief(values[bad[0]])})")
    if "std" in norm.stats:
        std = np.asarray(norm.stats["std"])
        zero_ok = not (divides and norm.mode == "MEAN_STD")
        bad = np.flatnonzero(std < 0 if zero_ok else std <= 0).tolist()
        if bad:
            raise PackageError(f"{where}: statistic 'std' is {brief(float(std[bad[0]]))} at index {bad}; "
                               + ("a standard deviation is never negative" if zero_ok else
                                  "MEAN_STD divides by std + eps, so a zero spread turns any value off the training "
                                  "constant into ~1/eps"))
    for lo_key, hi_key in (("min", "max"), ("q01", "q99"), ("q10", "q90")):
        if lo_key in norm.stats and hi_key in norm.stats:
            lo, hi = np.asarray(norm.stats[lo_key]), np.asarray(norm.stats[hi_key])
            divided = divides and MODE_STATS[norm.mode] == (lo_key, hi_key)
            bad = np.flatnonzero(hi <= lo if divided else hi < lo).tolist()
            if bad:
                raise PackageError(f"{where}: statistics {brief(lo_key)}/{brief(hi_key)} are {brief(float(lo[bad[0]]))}/"
                                   f"{brief(float(hi[bad[0]]))} at "
                                   f"index {bad}; " + (f"{norm.mode} divides by {hi_key} - {lo_key}, which must be > 0"
                                                       if divided else "the range is reversed"))


def check_chunking(section: PolicySection, c: Chunking) -> None:
    """LeRobot's chunking rules, generic and the family's, so no runner silently queues fewer actions."""
    if c.chunk_size < 1 or not 1 <= c.n_action_steps <= c.chunk_size or c.n_obs_steps < 1:
        raise PackageError(f"{field_ref('chunking')} is inconsistent: chunk_size={c.chunk_size}, "
                           f"n_action_steps={c.n_action_steps} (must be in 1..chunk_size), n_obs_steps={c.n_obs_steps}")
    if c.temporal_ensemble_coeff is not None:
        check_finite(c.temporal_ensemble_coeff, "chunking.temporal_ensemble_coeff")
    section.check_chunking(c)



def _check_inputs(m: Manifest) -> None:
    if not m.inputs:
        raise PackageError(f"{field_ref('inputs')} is empty: a policy observes something")
    seen: set[str] = set()
    for i, inp in enumerate(m.inputs):
        where = f"inputs[{i}]"
        if not inp.name or inp.name in seen:
            raise PackageError(f"{field_ref(where + '.name')} is {brief(inp.name)}: feature names must be non-empty "
                               "and unique")
        seen.add(inp.name)
        if inp.kind not in INPUT_KINDS:
            raise PackageError(f"{field_ref(where + '.kind')} ({brief(inp.name)}) is {brief(inp.kind)}; expected one "
                               f"of {INPUT_KINDS}")
        if not inp.shape or any(d < 1 for d in inp.shape):
            raise PackageError(f"{field_ref(where + '.shape')} ({inp.name}) is {inp.shape}; dimensions must be >= 1")
        if inp.kind == "image" and (inp.dtype != "uint8" or len(inp.shape) != 3 or inp.shape[2] != 3):
            raise PackageError(f"{field_ref(where)} ({inp.name}): images must be uint8 HWC with 3 channels, manifest says "
                               f"{inp.dtype} {inp.shape}")
        if inp.kind != "image" and inp.dtype != "float32":
            raise PackageError(f"{field_ref(where + '.dtype')} ({inp.name}) is {brief(inp.dtype)}; states are float32")
        check_normalization(inp.normalization, f"{field_ref(where + '.normalization')} ({inp.name})", inp.elements,
                            divides=True)


def _check_graph_specs(m: Manifest) -> None:
    for name, g in m.graphs.items():
        where = f"graphs.{name}"
        check_inside(g.file, where + ".file")
        check_digest(g.sha256, where + ".sha256")
        if not 1 <= g.opset <= MAX_OPSET:
            raise PackageError(f"{field_ref(where + '.opset')} is {g.opset}; packages use opset 1..{MAX_OPSET}")
        for kind, tensors in (("inputs", g.inputs), ("outputs", g.outputs)):
            names = [t.name for t in tensors]
            if not tensors or len(set(names)) != len(names):
                raise PackageError(f"{field_ref(f'{where}.{kind}')} is {names}; names must be non-empty and unique")
            for k, t in enumerate(tensors):
                if t.dtype != "float32" or any(d < 1 for d in t.shape):
                    raise PackageError(f"{field_ref(f'{where}.{kind}[{k}]')} ({t.name}) is {t.dtype} {t.shape}; graph "
                                       "tensors are float32 with fixed dimensions >= 1")



def _check_graph_io(m: Manifest, expected: GraphIO) -> None:
    """Graph names and every tensor's name and shape against what the family's runner feeds and reads."""
    if set(m.graphs) != set(expected):
        raise PackageError(f"{field_ref('graphs')} lists {sorted(m.graphs)}; a {m.policy_type} package with this "
                           f"policy section has {sorted(expected)}")
    bound: dict[str, tuple[int, str]] = {}
    for graph, (want_in, want_out) in expected.items():
        spec = m.graphs[graph]
        for kind, want, have in (("inputs", want_in, spec.inputs), ("outputs", want_out, spec.outputs)):
            if sorted(t.name for t in have) != sorted(want):
                raise PackageError(f"{field_ref(f'graphs.{graph}.{kind}')} names {[t.name for t in have]}; the "
                                   f"{m.policy_type} runner uses {list(want)}")
            for k, t in enumerate(have):
                where = f"graphs.{graph}.{kind}[{k}].shape"
                pattern = want[t.name]
                if len(t.shape) != len(pattern):
                    raise PackageError(f"{field_ref(where)} ({t.name}) is {t.shape}; expected {len(pattern)} dimensions")
                for d, (got, exp) in enumerate(zip(t.shape, pattern)):
                    if isinstance(exp, str):
                        value, first = bound.setdefault(exp, (got, where))
                        reason = f"{first} says {value} ({exp.replace('_', ' ')})"
                    elif isinstance(exp, tuple):
                        value, reason = exp[0], f"manifest field {brief(exp[1])} is {exp[0]}"
                    else:
                        value, reason = exp, f"it is always {exp}"
                    if got != value:
                        raise PackageError(f"{field_ref(where)} ({t.name}) is {t.shape}: dimension {d} is {got}, "
                                           f"but {reason}")


def _check_validation(m: Manifest) -> None:
    v = m.validation
    check_inside(v.file, "validation.file")
    check_digest(v.sha256, "validation.sha256")
    if v.samples < 1:
        raise PackageError(f"{field_ref('validation.samples')} is {v.samples}; a package carries at least one sample")
    check_finite(v.tolerance, "validation.tolerance", positive=True)
    if set(v.export_max_abs_error) != set(m.graphs):
        raise PackageError(f"{field_ref('validation.export_max_abs_error')} covers {sorted(v.export_max_abs_error)}, "
                           f"the graphs are {sorted(m.graphs)}")
    for name, err in v.export_max_abs_error.items():
        if not math.isfinite(err) or err < 0:
            raise PackageError(f"{field_ref(f'validation.export_max_abs_error.{name}')} is {brief(err)}")


def _check_fp16(m: Manifest) -> None:
    f = m.fp16_preflight
    if f is None:
        return
    check_finite(f.tolerance, "fp16_preflight.tolerance", positive=True)
    if f.range_headroom is not None and not (math.isfinite(f.range_headroom) and f.range_headroom >= 1):
        raise PackageError(f"{field_ref('fp16_preflight.range_headroom')} is {f.range_headroom!r}; it must be >= 1")
    for name, g in f.graphs.items():
        if name not in m.graphs:
            raise PackageError(f"{field_ref(f'fp16_preflight.graphs.{name}')}: the package has no graph {brief(name)}")
        check_inside(g.file, f"fp16_preflight.graphs.{name}.file")
        check_digest(g.sha256, f"fp16_preflight.graphs.{name}.sha256")
        r = g.range
        if r is not None and (min(r.tensors, r.runs, r.over_limit_count) < 0 or not 0 <= r.below_normal_share <= 1
                              or len(r.over_limit) > r.over_limit_count):
            raise PackageError(f"{field_ref(f'fp16_preflight.graphs.{name}.range')} is inconsistent: counts must be "
                               ">= 0, over_limit lists at most over_limit_count tensors, below_normal_share in [0, 1]")


def _check_dataset(m: Manifest) -> None:
    """The optional dataset section: fps within 1..MAX_FPS, names non-empty, unique, one per state/action element."""
    d = m.dataset
    if d is None:
        return
    if d.fps is not None and not 1 <= d.fps <= MAX_FPS:
        raise PackageError(f"{field_ref('dataset.fps')} is {d.fps}; it must be within 1..{MAX_FPS} (actions a second)")
    state = next((i for i in m.inputs if i.kind == "state"), None)
    for name, names, dim in (("state_names", d.state_names, None if state is None else int(np.prod(state.shape))),
                             ("action_names", d.action_names, m.action.dim)):
        if names is None:
            continue
        if any(not n for n in names) or len(set(names)) != len(names):
            raise PackageError(f"{field_ref(f'dataset.{name}')} must be non-empty, unique names, got {names}")
        if dim is not None and len(names) != dim:
            raise PackageError(f"{field_ref(f'dataset.{name}')} has {len(names)} names for {dim} values")


def check_manifest(m: Manifest) -> None:
    """Every value and cross-field rule; PackageError naming the manifest field at fault."""
    if m.weights not in WEIGHT_STORAGE:
        raise PackageError(f"{field_ref('weights')} is {brief(m.weights)} (expected one of {WEIGHT_STORAGE})")
    if m.cpu_precision not in CPU_PRECISIONS:
        raise PackageError(f"{field_ref('cpu_precision')} is {brief(m.cpu_precision)} (expected one of {CPU_PRECISIONS})")
    if m.source.config.get("type", m.policy_type) != m.policy_type:
        raise PackageError(f"{field_ref('source.config.type')} is {brief(m.source.config.get('type'))} but "
                           f"{field_ref('policy_type')} is {brief(m.policy_type)}")
    _check_inputs(m)
    if m.action.dim < 1:
        raise PackageError(f"{field_ref('action.dim')} is {m.action.dim}; it must be >= 1")
    check_normalization(m.action.normalization, field_ref("action.normalization"), m.action.dim, divides=False)
    check_chunking(m.policy, m.chunking)
    _check_graph_specs(m)
    _check_graph_io(m, m.policy.graph_io(m))
    _check_validation(m)
    _check_fp16(m)
    _check_dataset(m)
