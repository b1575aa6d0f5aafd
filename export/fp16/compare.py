"""FP16 vs FP32 on the workstation's CPU: each graph on the validation samples, and the policy over a few steps."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edge.errors import PolicyOutputError
from edge.runtime.backends.base import Backend
from edge.runtime.normalize import Normalizer
from edge.runtime.package import PolicyPackage
from edge.runtime.policies import runner_class


@dataclass
class OutputError:
    """FP16 vs FP32 on one output over all validation samples; `scaled` = max_abs / max(1, ref_max_abs)."""

    max_abs: float
    ref_max_abs: float
    scaled: float


def compare_graph(references: list[dict[str, np.ndarray]],
                  candidate: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                  samples: list[dict[str, np.ndarray]]) -> dict[str, OutputError]:
    """`candidate` (feeds -> outputs) on `samples` against the FP32 outputs `references` (one per sample);
    per-output worst error, inf where the candidate is not finite."""
    worst: dict[str, list[float]] = {}
    for feeds, ref in zip(samples, references):
        got = candidate(feeds)
        for name, a in ref.items():
            a, b = np.asarray(a, np.float64), np.asarray(got[name], np.float64)
            err = float(np.max(np.abs(a - b))) if a.size else 0.0
            w = worst.setdefault(name, [0.0, 0.0])
            w[0] = max(w[0], err) if np.isfinite(err) else float("inf")
            w[1] = max(w[1], float(np.max(np.abs(a))) if a.size else 0.0)
    return {n: OutputError(e, r, e / max(1.0, r)) for n, (e, r) in worst.items()}


def synthetic_observations(package: PolicyPackage, steps: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Raw robot observations for `steps` steps: states drawn in normalised space and unnormalised, random images."""
    rng = np.random.default_rng(seed)
    observations = []
    for _ in range(steps):
        obs = {}
        for inp in package.manifest.inputs:
            if inp.kind == "image":
                obs[inp.name] = rng.integers(0, 256, inp.shape, dtype=np.uint8)
            else:
                norm = Normalizer(inp.normalization, tuple(inp.shape))
                obs[inp.name] = norm.inverse(rng.standard_normal(inp.shape).astype(np.float32)).astype(np.float32)
        observations.append(obs)
    return observations


def _runner(package: PolicyPackage, backend: Backend, seed: int) -> Any:
    """A policy runner on `backend`; families that sample get the same seed on both sides."""
    cls = runner_class(package.manifest.policy_type)
    options = {"seed": seed} if "seed" in inspect.signature(cls.__init__).parameters else {}
    return cls(package, backend, **options)


def policy_steps(package: PolicyPackage, steps: int, seed: int, fp32: Backend, fp16: Backend) -> list[dict[str, float]]:
    """Run the policy on `fp32` and on `fp16` side by side; per step the action error in robot and normalised
    units. A non-finite FP16 action ends the steps with an infinite error."""
    r32, r16 = _runner(package, fp32, seed), _runner(package, fp16, seed)
    r32.reset()
    r16.reset()
    action = package.manifest.action
    normalize = Normalizer(action.normalization, (action.dim,))
    rows = []
    for t, obs in enumerate(synthetic_observations(package, steps, seed)):
        a32 = r32.select_action(obs)
        try:
            a16 = r16.select_action(obs)
        except PolicyOutputError:  # FP16 overflowed to inf or NaN: the step fails, later steps cannot run
            rows.append({"step": t, "max_abs": float("inf"), "max_abs_normalized": float("inf")})
            break
        rows.append({"step": t, "max_abs": float(np.max(np.abs(a16 - a32))),
                     "max_abs_normalized": float(np.max(np.abs(normalize(a16) - normalize(a32))))})
    return rows
