"""Few-step sampling of the bundled Diffusion Policy: closed-loop success per sampler and step count K.

    python benchmarks/eval_samplers.py [--episodes 200] [--seed 1000] [--steps 1 2 3 4 6 10] [--no-write]

The bundled package (edge/data/demo_diffusion, trained with LeRobot's DDPM-100 schedule) runs on ONNX Runtime
FP32, one thread, with each training-free sampler of edge/runtime/schedulers.py — DDIM, DPM-Solver++ 2M and UniPC-2, all
on the checkpoint's "leading" timesteps — at each K, on the same scenes (--seed) with the same sampler seed as
benchmarks/eval_demo.py. Chunk latency: median of 20 denoising
calls (K U-Net steps plus the scheduler) on one observation. Writes the "samplers" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402
from edge.runtime.policies.diffusion import DiffusionRunner  # noqa: E402
from edge.runtime.timing import median_ms  # noqa: E402
from edge.sim.evaluate import EvalResult, evaluate, format_row, markdown_table, text_table  # noqa: E402

PACKAGE = ROOT / "edge" / "data" / "demo_diffusion"
SAMPLERS = ("ddim", "dpmsolver++", "unipc")
STEPS = (1, 2, 3, 4, 6, 10)
POLICY_SEED = 0  # as benchmarks/eval_demo.py
REFERENCE = ("ddim", 10)
COLUMNS = ("configuration", "episodes", "success %", "Δ vs DDIM-10", "left %", "right %", "collisions", "timeouts",
           "timesteps", "chunk ms")


def chunk_ms(policy: DiffusionRunner) -> float:
    """Median time of one chunk's denoising (K U-Net calls and scheduler steps) on a fixed global_cond."""
    data = policy.package.validation_samples()
    cond = policy.graphs["obs_encoder"].run({n: data[f"obs_encoder/0/in/{n}"] for n in policy.input_names})
    noise = np.random.default_rng(0).standard_normal(policy.chunk_shape, dtype=np.float32)
    return median_ms(lambda: policy.denoise(cond["global_cond"], noise), 20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--steps", type=int, nargs="+", default=list(STEPS))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    package = load_package(PACKAGE)
    results: dict[tuple[str, int], EvalResult] = {}
    rows = []
    for sampler in SAMPLERS:
        for k in args.steps:
            policy = DiffusionRunner(package, OnnxRuntimeBackend(["CPUExecutionProvider"], threads=1),
                                     sampler=sampler, num_inference_steps=k, seed=POLICY_SEED)
            result = results[(sampler, k)] = evaluate(policy, args.episodes, args.seed)
            rows.append((sampler, k, result, policy.scheduler.timesteps.tolist(), chunk_ms(policy)))
            print(f"{sampler} K={k}: success {100 * result.success_rate:.1f}%", file=sys.stderr, flush=True)
    reference = results.get(REFERENCE)
    table = [format_row(f"{s} K={k}", r, reference) + [" ".join(map(str, ts)), f"{ms:.2f}"]
             for s, k, r, ts, ms in rows]
    print(text_table(table, COLUMNS))
    goals = []
    if reference is not None:
        for sampler in SAMPLERS:
            ok = [k for k in args.steps if k <= 4 and (sampler, k) in results
                  and 100 * (reference.success_rate - results[(sampler, k)].success_rate) <= 2]
            goals.append(f"{sampler}: K <= 4 within 2 points of DDIM-10 at K = {ok or 'none'}")
    body = "\n\n".join([
        f"Bundled `demo_diffusion` (trained with LeRobot's DDPM-100 schedule, squaredcos_cap_v2, epsilon, "
        f"clip_sample), ONNX Runtime FP32 on one thread, {args.episodes} episodes per row, scenes from seed "
        f"{args.seed}, sampler seed {POLICY_SEED} (the scenes and seed of the eval section). DDIM, DPM-Solver++ "
        "(2M, data prediction, midpoint) and UniPC (bh2, predict_x0, corrector on) all step through the "
        "checkpoint's \"leading\" timesteps (diffusers' `from_config` swap) and clip x0 to clip_sample_range as "
        "LeRobot's DDIM does. Δ: success points vs DDIM-10. Chunk ms: median of 20 "
        f"denoising calls on one observation ({os.cpu_count()} CPUs shared; small model: per-call overhead).",
        markdown_table(table, COLUMNS),
        "\n".join(f"- {g}" for g in goals),
    ])
    print("\n".join(goals))
    if not args.no_write:
        from benchmarks._results import write_section
        write_section("samplers", "Diffusion Policy: few-step samplers on the reach task",
                      "benchmarks/eval_samplers.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
