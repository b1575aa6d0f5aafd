"""A LeRobot config.json read into a family's config dataclass, every field typed, and sized against memory.

LeRobot's draccus parses config.json into typed dataclasses; reading it as a plain dict let `"chunk_size": "20"`
reach torch as a TypeError and `dim_model: 5120000` as "can't allocate 314572800000000 bytes". Here every field
is checked against its dataclass type by the manifest's own reader (edge/runtime/package/parsing.py) under
config.json's rules (booleans are not integers, sizes and counts are in 1..MAX_SIZE, numbers finite), dropout a
probability, the feature table too, and the network is first built on PyTorch's meta device, which
allocates nothing, so that parameters that cannot fit in the memory available are refused before one is made.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from calibration.strict_files import brief, brief_keys
from edge.runtime.package.parsing import FieldRules, described, parse_field
from export.errors import CheckpointError

T = TypeVar("T")
FEATURE_TYPES = ("STATE", "VISUAL", "ENV", "ACTION")
PROBABILITIES = ("dropout",)
MAX_SIZE = 1 << 20  # no LeRobot size or count comes near it (codebooks ~1e4, timesteps ~1e3, widths ~1e3)
MEMORY_FACTOR = 3  # the weights are held about three times during an export: checkpoint, model, ONNX graph


def config_field(where: str) -> str:
    """How an error names a config.json field: "config.json field 'chunk_size'"."""
    return f"config.json field {brief(where)}"


CONFIG = FieldRules(config_field, CheckpointError, ints=(1, MAX_SIZE), finite=True)


def check_features(value: Any, key: str) -> dict[str, dict]:
    """`input_features` / `output_features`: {name: {"type": one of FEATURE_TYPES, "shape": [int >= 1, ...]}}."""
    if not isinstance(value, dict) or not value:
        raise CheckpointError(f"{config_field(key)} must be a non-empty object, got {described(value)}")
    for name, ft in value.items():
        where = f"{key}.{str(name) if len(str(name)) <= 60 else str(name)[:57] + '...'}"
        if not isinstance(ft, dict) or "type" not in ft or "shape" not in ft:
            raise CheckpointError(f"{config_field(where)} needs 'type' and 'shape'")
        if ft["type"] not in FEATURE_TYPES:
            raise CheckpointError(f"{config_field(where + '.type')} is {brief(ft['type'])}; expected one of "
                                  f"{', '.join(FEATURE_TYPES)}")
        shape = parse_field(list[int], ft["shape"], f"{where}.shape", CONFIG)
        if not shape:
            raise CheckpointError(f"{config_field(where + '.shape')} is empty")
    return value


def typed_config(cls: type[T], config: dict[str, Any], family: str) -> T:
    """`cls` (a config dataclass) from config.json: missing fields named, every present field type-checked."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    missing = [n for n, f in fields.items() if n not in config and f.default is dataclasses.MISSING]
    if missing:
        raise CheckpointError(f"config.json lacks {family} field(s) {brief_keys(missing)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name in fields:
        if name not in config:
            continue
        if name in ("input_features", "output_features"):
            values[name] = check_features(config[name], name)
            continue
        values[name] = parse_field(hints[name], config[name], name, CONFIG)
        if name in PROBABILITIES and not 0 <= values[name] < 1:
            raise CheckpointError(f"{config_field(name)} is a probability in [0, 1), got {values[name]}")
    return cls(**values)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else the free physical pages; None when neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def build_within_memory(make: Callable[[], nn.Module], family: str) -> nn.Module:
    """`make()` once on the meta device (no memory) to size its parameters and buffers, refused with the sizes
    when MEMORY_FACTOR times that exceeds the memory available; then for real."""
    try:
        with torch.device("meta"):
            probe = make()
    except CheckpointError:
        raise
    except (RuntimeError, ValueError, TypeError, OverflowError, ZeroDivisionError, AssertionError, KeyError,
            IndexError) as exc:
        raise CheckpointError(f"config.json describes a network ({family}) that cannot be built: "
                              f"{brief(str(exc))}") from None
    tensors = [*probe.parameters(), *probe.buffers()]
    needed = sum(t.numel() * t.element_size() for t in tensors)
    del probe, tensors
    available = available_bytes()
    if available is not None and needed * MEMORY_FACTOR > available:
        raise CheckpointError(f"config.json describes a network ({family}) with {needed / 2 ** 30:.1f} GiB of "
                              f"parameters; exporting it needs about {MEMORY_FACTOR * needed / 2 ** 30:.1f} GiB and "
                              f"{available / 2 ** 30:.1f} GiB is available (check its widths, layer counts and "
                              "codebook size)")
    return make()
