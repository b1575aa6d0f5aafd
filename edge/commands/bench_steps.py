"""`edge bench-steps <package>`: how few DDIM steps a Diffusion Policy package gets away with, and at what latency.

For each K: the chunk latency (observation window → chunk) with per-step denoiser calls and, where the
package has one, with the fused K-step graph; and the max / mean deviation of the DDIM-K chunk from the
DDIM-100 chunk (policy units), on the package's validation observations with the same initial noise.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import load_policy
from edge.errors import CLIError
from edge.option_types import count, counts
from edge.runtime.package import load_package
from edge.runtime.policies.diffusion import DiffusionRunner
from edge.runtime.timing import median_ms
from edge.sim.demo_packages import resolve_package

DEFAULT_STEPS = (1, 2, 4, 8, 10, 16, 32, 100)
REFERENCE_STEPS = 100


@dataclass
class StepRow:
    """One K of the study; latencies in milliseconds (median), deviations in policy units."""

    steps: int
    per_step_ms: float
    fused_ms: float | None
    max_dev: float
    mean_dev: float


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench-steps", help="few-step DDIM study of a Diffusion Policy package",
                              description=__doc__.splitlines()[0])
    p.add_argument("package", help="a diffusion policy package directory, or diffusion for the bundled demo's")
    p.add_argument("--steps", type=counts, default=",".join(map(str, DEFAULT_STEPS)),
                   help=f"comma-separated DDIM step counts (default {','.join(map(str, DEFAULT_STEPS))})")
    p.add_argument("--repeats", type=count, default=5, help="timed runs per validation sample (default 5)")
    p.add_argument("--backend", default="auto", help="backend to run on (default auto)")
    return p


def study(path: str | Path, steps: list[int], repeats: int = 5, backend: str = "auto", seed: int = 0) -> list[StepRow]:
    """Run the few-step study on the package's validation observations (one fixed noise per sample)."""
    package = load_package(path)
    if package.manifest.policy_type != "diffusion":
        raise CLIError(f"{path} is a {package.manifest.policy_type!r} package; bench-steps needs a diffusion one")
    n_train = package.manifest.policy.scheduler.num_train_timesteps
    bad = [k for k in steps if not 1 <= k <= n_train]
    if bad:
        raise CLIError(f"step counts {bad} are outside 1..{n_train} (num_train_timesteps)")
    windows = package.graph_samples("obs_encoder")

    def chunks(runner: DiffusionRunner) -> np.ndarray:
        return np.stack([runner.unnormalize(runner.denoise(runner.graphs["obs_encoder"].run(w)["global_cond"], z))
                         for w, z in zip(windows, noises)])

    def latency(runner: DiffusionRunner) -> float:
        return median_ms(lambda: runner.denoise(runner.graphs["obs_encoder"].run(windows[0])["global_cond"],
                                                 noises[0]), repeats)

    with load_policy(path, backend, sampler="ddim", num_inference_steps=min(REFERENCE_STEPS, n_train)) as reference:
        noises = np.random.default_rng(seed).standard_normal((len(windows), *reference.chunk_shape), dtype=np.float32)
        target = chunks(reference)
    rows = []
    for k in steps:
        with load_policy(path, backend, sampler="ddim", num_inference_steps=k, fused=False) as per_step, \
                load_policy(path, backend, sampler="ddim", num_inference_steps=k) as fused:
            dev = np.abs(chunks(per_step) - target)
            rows.append(StepRow(k, latency(per_step), latency(fused) if fused.fused_graph else None,
                                float(dev.max()), float(dev.mean())))
    return rows


def format_table(rows: list[StepRow]) -> str:
    """The study as a markdown table."""
    lines = ["| DDIM steps K | chunk latency, per-step graphs (ms) | chunk latency, fused graph (ms) "
             f"| max dev. from DDIM-{REFERENCE_STEPS} | mean dev. from DDIM-{REFERENCE_STEPS} |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        fused = f"{r.fused_ms:.2f}" if r.fused_ms is not None else "-"
        lines.append(f"| {r.steps} | {r.per_step_ms:.2f} | {fused} | {r.max_dev:.3g} | {r.mean_dev:.3g} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    rows = study(resolve_package(args.package), args.steps, args.repeats, args.backend)
    print(format_table(rows))
    return 0
