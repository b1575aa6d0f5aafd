"""Naming the manifest field at fault: every package error says which field, in the same words."""

from __future__ import annotations

import numpy as np

from calibration.strict_files import brief
from edge.errors import PackageError


def field_ref(where: str) -> str:
    """How an error names a manifest field: "manifest field 'chunking.n_obs_steps'"."""
    return f"manifest field {brief(where)}"


def check_finite(value: float, where: str, positive: bool = False, below: float | None = None) -> None:
    """A number finite in float32 (the runtime's precision), optionally > 0 and < `below`."""
    with np.errstate(over="ignore"):
        ok = bool(np.isfinite(np.float32(value))) and (not positive or np.float32(value) > 0) \
            and (below is None or value < below)
    if not ok:
        raise PackageError(f"{field_ref(where)} is {brief(value)}; it must be a number finite in float32"
                           + (" and > 0" if positive else "") + (f" and < {below:g}" if below is not None else ""))
