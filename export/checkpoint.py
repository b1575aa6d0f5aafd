"""Read a LeRobot `pretrained_model/` directory with no lerobot installed and no network.

Reads config.json, model.safetensors and the normalisation statistics, either from the
pre/post-processor files (LeRobot >= 0.4) or from the older `normalize_inputs.*` /
`unnormalize_outputs.*` buffers inside model.safetensors. Weights load strictly: a missing,
unused or mis-shaped key is an error naming the key (LeRobot itself only warns).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from calibration.strict_files import brief, read_json
from edge.errors import PackageError
from edge.runtime.package import STATISTICS, Normalization, check_normalization
from export.config_fields import check_features
from export.errors import CheckpointError

OLD_NORM_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")


@dataclass
class Feature:
    name: str
    type: str  # STATE | ENV | VISUAL | ACTION
    shape: list[int]


@dataclass
class Checkpoint:
    path: Path
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    input_features: list[Feature]
    output_features: list[Feature]
    normalization: dict[str, Normalization] = field(default_factory=dict)
    sha256: str = ""

    @property
    def policy_type(self) -> str:
        return self.config["type"]


def _hash_dir(path: Path) -> str:
    """sha256 over every file's relative name and content, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _features(config: dict, key: str) -> list[Feature]:
    feats = check_features(config.get(key), key)
    return [Feature(name, ft["type"], list(ft["shape"])) for name, ft in feats.items()]


def _processor_stats(path: Path, json_name: str, registry_name: str) -> tuple[dict[str, np.ndarray], float, str] | None:
    """Stats (flat `<feature>.<stat>` keys), eps and the statistics file's name from a processor pipeline's
    (un)normaliser step."""
    pipeline = path / json_name
    if not pipeline.is_file():
        return None
    data = read_json(pipeline, CheckpointError, "processor file")
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list):
        raise CheckpointError(f"{pipeline} is not a LeRobot processor file: no 'steps' list")
    for i, step in enumerate(steps):
        if isinstance(step, dict) and step.get("registry_name") == registry_name and step.get("state_file"):
            if not isinstance(step["state_file"], str) or Path(step["state_file"]).name != step["state_file"]:
                raise CheckpointError(f"{pipeline}: steps[{i}].state_file is {brief(step['state_file'])}, not the "
                                      "name of a file beside it")
            state_file = path / step["state_file"]
            if not state_file.is_file():
                raise CheckpointError(f"{pipeline} names {state_file.name}, which is missing")
            try:
                stats = {k: v.numpy() for k, v in load_file(str(state_file)).items()}
            except Exception as exc:  # safetensors raises SafetensorError / OSError
                raise CheckpointError(f"{state_file} cannot be read: {exc}") from None
            eps = step["config"].get("eps", 1e-8) if isinstance(step.get("config"), dict) else 1e-8
            if isinstance(eps, bool) or not isinstance(eps, (int, float)):
                raise CheckpointError(f"{pipeline}: the {registry_name} step's eps is {brief(eps)}, not a number")
            return stats, float(eps), state_file.name
    return None


def _merge_stats(sources: list[tuple[str, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """One flat statistics dict from several files; a statistic held by two of them must agree there."""
    merged: dict[str, tuple[str, np.ndarray]] = {}
    for source, stats in sources:
        for key, value in stats.items():
            value = np.asarray(value, np.float32).reshape(-1)
            if key in merged:
                first, other = merged[key]
                if other.shape != value.shape or not np.array_equal(other, value, equal_nan=True):
                    diff = int(np.argmax(other != value)) if other.shape == value.shape else None
                    detail = (f"index {diff}: {brief(float(other[diff]))} vs {brief(float(value[diff]))}" if diff is not None
                              else f"{other.size} vs {value.size} values")
                    feature, stat = key.rsplit(".", 1)
                    raise CheckpointError(f"{first} and {source} disagree on statistic {brief(stat)} of {brief(feature)} "
                                          f"({detail}); which one the policy was trained with is unknown, fix the "
                                          "checkpoint")
            merged[key] = (source, value)
    return {k: v for k, (_, v) in merged.items()}


def _old_buffer_stats(state_dict: dict[str, torch.Tensor], features: list[Feature]) -> dict[str, np.ndarray]:
    """Pre-processor-era checkpoints: `normalize_inputs.buffer_observation_state.mean` and friends."""
    by_buffer = {"buffer_" + f.name.replace(".", "_"): f.name for f in features}
    stats = {}
    for key in list(state_dict):
        if key.startswith(OLD_NORM_PREFIXES):
            _, buffer, stat = key.split(".", 2)
            if buffer in by_buffer:
                stats[f"{by_buffer[buffer]}.{stat}"] = state_dict[key].numpy()
            del state_dict[key]
    return stats


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load config, weights and normalisation statistics; raises CheckpointError naming what is missing."""
    root = Path(path)
    if (root / "pretrained_model").is_dir() and not (root / "config.json").exists():
        root = root / "pretrained_model"
    for name in ("config.json", "model.safetensors"):
        if not (root / name).is_file():
            raise CheckpointError(f"{root} has no {name}: not a LeRobot pretrained_model directory")
    config = read_json(root / "config.json", CheckpointError, "config file")
    if not isinstance(config, dict) or "type" not in config:
        raise CheckpointError("config.json has no 'type' (the LeRobot policy family, e.g. 'act')")
    try:
        state_dict = load_file(str(root / "model.safetensors"))
    except Exception as exc:  # safetensors raises SafetensorError / OSError
        raise CheckpointError(f"{root / 'model.safetensors'} cannot be read: {exc}") from None

    inputs, outputs = _features(config, "input_features"), _features(config, "output_features")
    all_feats = inputs + outputs
    sources: list[tuple[str, dict[str, np.ndarray]]] = []
    eps = 1e-8
    for json_name, registry in (("policy_preprocessor.json", "normalizer_processor"),
                                ("policy_postprocessor.json", "unnormalizer_processor")):
        found = _processor_stats(root, json_name, registry)
        if found:
            sources.append((found[2], found[0]))
            eps = found[1]
    sources.append(("model.safetensors (normalize_* buffers)", _old_buffer_stats(state_dict, all_feats)))
    flat = _merge_stats(sources)

    norm_map = config.get("normalization_mapping", {})
    if not isinstance(norm_map, dict):
        raise CheckpointError(f"config.json: normalization_mapping is {brief(norm_map)}, not an object")
    normalization = {}
    for f in all_feats:
        mode = norm_map.get(f.type, "IDENTITY")
        stats = {stat: v.tolist() for k, v in flat.items() for feature, stat in [k.rsplit(".", 1)]
                 if feature == f.name and stat in STATISTICS}  # what the runtime reads; counts and the like are not
        if mode != "IDENTITY" and not stats:
            raise CheckpointError(f"feature {brief(f.name)} uses {mode} normalisation but the checkpoint has no "
                                  "statistics for it (no processor files and no normalize_* buffers)")
        normalization[f.name] = Normalization(mode=mode if stats else "IDENTITY", stats=stats, eps=eps)
        elements = 3 if f.type == "VISUAL" else int(np.prod(f.shape))
        try:
            check_normalization(normalization[f.name], f"checkpoint statistics of {brief(f.name)}", elements,
                                divides=f.type != "ACTION")
        except PackageError as exc:
            raise CheckpointError(str(exc)) from None
    return Checkpoint(root, config, state_dict, inputs, outputs, normalization, _hash_dir(root))


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Load weights refusing any missing, unused or mis-shaped key, and name the key."""
    expected = module.state_dict()
    given = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    unused = sorted(set(state_dict) - {prefix + k for k in given}) + sorted(set(given) - set(expected))
    if unused:
        raise CheckpointError(f"checkpoint has {len(unused)} weight(s) the model does not use, e.g. {brief(unused[0])}"
                              " (wrong policy type or config?)")
    missing = sorted(set(expected) - set(given))
    if missing:
        raise CheckpointError(f"checkpoint is missing {len(missing)} weight(s), e.g. {brief(prefix + missing[0])}")
    for k, v in given.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"weight {brief(prefix + k)} has shape {tuple(v.shape)}, config.json implies "
                                  f"{tuple(expected[k].shape)}")
    module.load_state_dict(given, strict=True)
